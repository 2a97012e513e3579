// A stream's credential asked again: a refusal by the authenticator ends the stream; the store failing
// for a moment does not, and the next question is asked afresh rather than answered from the failure.
import { expect, test } from "bun:test"
import { setLogSink } from "../../protocol/log.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import { unauthenticated } from "../domain/errors.ts"
import type { Principal } from "../domain/ports.ts"
import { streamCredentials } from "./stream-credentials.ts"

const viewer = { kind: "user", role: "viewer" } as Principal

function scripted(answers: (() => Promise<Principal>)[]) {
  let asked = 0
  const authenticator = {
    authenticate: () => {
      const next = answers[Math.min(asked, answers.length - 1)] as () => Promise<Principal>
      asked++
      return next()
    },
  } as unknown as Authenticator
  return { authenticator, asked: () => asked }
}

test("a store that fails for a moment lets the stream go on, and is asked again at the next frame", async () => {
  const lines: string[] = []
  setLogSink((line) => lines.push(line))
  const auth = scripted([
    () => Promise.reject(new Error("Connection closed")),
    () => Promise.resolve(viewer),
    () => Promise.reject(unauthenticated("the API token is unknown or revoked")),
  ])
  const credentials = streamCredentials(auth.authenticator)
  try {
    expect(await credentials.refusal("t", 0)).toBeNull()
  } finally {
    setLogSink((line) => process.stderr.write(`${line}\n`))
  }
  expect(lines.join("\n")).toContain("could not check a stream's credential again")
  // Asked no later than the failed question: not answered from it.
  expect(await credentials.refusal("t", 0)).toBeNull()
  expect(auth.asked()).toBe(2)
  // A refusal by the authenticator is one.
  expect(await credentials.refusal("t", performance.now() + 1)).toBe("the API token is unknown or revoked")
})

test("a credential that lost the permission is refused", async () => {
  const auth = scripted([() => Promise.resolve(viewer)])
  expect(await streamCredentials(auth.authenticator, "cli:use").refusal("t", 0)).toBe(
    "the credential no longer has cli:use",
  )
})
