// What a tool answers once the API has: a command that ran on no node, or failed on some, is no success.
import { expect, test } from "bun:test"
import type { CommandResults } from "../domain/command-results.ts"
import { OPERATIONS } from "../ops/catalogue.ts"
import { shapeAnswer, type ToolExtra } from "./answers.ts"
import type { ApiCaller } from "./api-caller.ts"
import { progressOf } from "./progress.ts"

const runCommand = OPERATIONS.find((o) => o.name === "run_command")
const unused = (() => Promise.reject(new Error("no API call expected"))) as unknown as ApiCaller

const relayed = (results: CommandResults["results"]): CommandResults => {
  const summary = { ok: 0, failed: 0, timeout: 0, offline: 0, cancelled: 0 }
  for (const r of results) summary[r.status]++
  return { results, summary, duration: 0 }
}
const node = (name: string, status: CommandResults["results"][number]["status"], exit: number | null) => ({
  node: name,
  status,
  success: status === "ok",
  exit_code: exit,
  stdout: "",
  stderr: status === "offline" ? "node has never sent a heartbeat" : "",
  duration: 0,
})

test("run_command is a success only when every node ran it; failures are named, and the nodes are its targets", async () => {
  if (!runCommand) throw new Error("run_command is not in the catalogue")
  const input = { command: "systemctl restart nginx", nodes: ["web-1", "web-2"] }
  const extra = {} as ToolExtra
  const progress = progressOf(extra)
  const failed = await shapeAnswer(
    runCommand,
    input,
    relayed([node("web-1", "ok", 0), node("web-2", "offline", null)]),
    unused,
    extra,
    progress,
  )
  expect(failed.status).toBe("failed")
  expect(failed.message).toContain("web-2 offline")
  expect(failed.targets).toEqual(["web-1", "web-2"])
  const ok = await shapeAnswer(
    runCommand,
    input,
    relayed([node("web-1", "ok", 0), node("web-2", "ok", 0)]),
    unused,
    extra,
    progress,
  )
  expect(ok.status).toBe("success")
  expect(ok.targets).toEqual(["web-1", "web-2"])
})
