// `chimera code --mode rpc` driven by a Python script as an integrator writes one (rpc_client.py,
// run by Debian's python3): commands split over writes, two in one write, a line that is not UTF-8,
// a line of 1 MiB, CRLF, a bad id, the last line without a newline. Every stdout line is one JSON
// object, every command gets its one response, and a line that is refused still names the id the
// client waits on wherever it can be read.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { join } from "node:path"
import { type ChatPlane, startChatPlane } from "./support/chat-plane.ts"
import { requireTool } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const CLIENT = join(import.meta.dir, "support/rpc_client.py")

let plane: ChatPlane

beforeAll(async () => {
  plane = await startChatPlane()
})
afterAll(async () => {
  await plane?.[Symbol.asyncDispose]()
})

type Line = Record<string, unknown>
interface Report {
  steps: { name: string; lines: Line[] }[]
  not_json: string[]
  exit: number
  stderr: string
}

test("a Python client's partial, doubled, non-UTF-8, huge and unterminated lines each get one JSON answer", async () => {
  plane.llm.script({ text: "hello back" })
  const proc = Bun.spawn([requireTool("python3"), CLIENT, process.execPath, MAIN, "code", "--mode", "rpc"], {
    env: { ...process.env, ...plane.env },
    stdout: "pipe",
    stderr: "inherit",
  })
  const report = JSON.parse(await new Response(proc.stdout).text()) as Report
  expect(await proc.exited).toBe(0)
  expect(report.not_json).toEqual([])
  expect(report.exit).toBe(0)
  expect(report.stderr).toBe("")
  const step = (name: string) => report.steps.find((s) => s.name === name)?.lines ?? []
  const last = (name: string) => step(name).at(-1)

  expect(last("split")).toMatchObject({ type: "response", id: "split", success: true })
  expect(
    step("two")
      .filter((l) => l.type === "response")
      .map((l) => l.id),
  ).toEqual(["two-a", "two-b"])
  // Not UTF-8 (Latin-1's é): refused, and the response carries the command and id it was sent with.
  expect(last("latin1")).toEqual({
    type: "response",
    command: "prompt",
    id: "latin1",
    success: false,
    error: "line 4: not UTF-8 text",
  })
  expect(last("huge")).toMatchObject({ type: "response", success: false, error: "line 5: longer than 262144 bytes" })
  expect(last("bad-id")).toMatchObject({
    command: "get_state",
    success: false,
    error: 'line 6: get_state: "id": expected a string of at most 256 characters, or a number',
  })
  expect(last("crlf")).toMatchObject({ id: "crlf", success: true })
  expect(step("prompt").find((l) => l.type === "message" && l.done === true)).toMatchObject({ content: "hello back" })
  expect(last("prompt")).toMatchObject({ id: "hello", success: true })
  expect(last("last")).toMatchObject({ id: "last", success: true })
}, 90_000)
