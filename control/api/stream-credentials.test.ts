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
  const away = () => Promise.reject(new Error("Connection closed"))
  const auth = scripted([
    away,
    away,
    away,
    () => Promise.resolve(viewer),
    () => Promise.reject(unauthenticated("the API token is unknown or revoked")),
  ])
  const credentials = streamCredentials(auth.authenticator)
  try {
    // Three streams' credentials, each failing: said once, not once a credential (nor a frame).
    for (const token of ["t", "u", "v"]) expect(await credentials.refusal(token, 0)).toBeNull()
    expect(lines.filter((l) => l.includes("could not check streams' credentials again"))).toHaveLength(1)
    // Asked no later than the failed question: not answered from it; the store answers again.
    expect(await credentials.refusal("t", 0)).toBeNull()
    expect(auth.asked()).toBe(4)
    expect(lines.at(-1)).toContain("recovered from: ")
    expect(lines.at(-1)).toContain('"failures":3')
  } finally {
    setLogSink((line) => process.stderr.write(`${line}\n`))
  }
  // A refusal by the authenticator is one.
  expect(await credentials.refusal("t", performance.now() + 1)).toBe("the API token is unknown or revoked")
})

test("a credential that lost the permission is refused", async () => {
  const auth = scripted([() => Promise.resolve(viewer)])
  expect(await streamCredentials(auth.authenticator, "cli:use").refusal("t", 0)).toBe(
    "the credential no longer has cli:use",
  )
})
