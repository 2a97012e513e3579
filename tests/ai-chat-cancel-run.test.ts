// A chat turn cancelled while the command it was approved to run still runs stops that command on the
// node, as a Ctrl-C would: a testbed node with its real agent, a control plane whose chat talks to a
// scripted model. The approved run_command sleeps and then makes a marker; the turn is cancelled
// mid-sleep; the marker never appears, and the tool's result says the node's command was cancelled.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import type { ChatStreamEvent, MessageResponse, Question } from "../protocol/ai.ts"
import { agentTestbed } from "./support/agent-testbed.ts"
import { aiSettingsFor, chatCall, eventStream } from "./support/ai-chat.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, startLlmServer } from "./support/llm-server.ts"
import type { Testbed, TestbedNode } from "./support/testbed.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

let llm: LlmServer
let cp: TestControlPlane
let bed: Testbed
let node: TestbedNode

beforeAll(async () => {
  llm = await startLlmServer("anthropic")
  cp = await startInProcess({ ai: aiSettingsFor(llm) })
  bed = await agentTestbed(cp, { nodes: 1, prefix: "chatcancel" })
  node = bed.nodes[0] as TestbedNode
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await cp?.stop()
  await llm?.stop()
})

test("cancelling the turn that runs an approved command stops the command on the node", async () => {
  const admin = cp.adminToken
  const { chatId } = (await (await chatCall(cp.url, admin, "POST", "/chat", { nodeId: node.name })).json()) as {
    chatId: number
  }
  const marker = `/tmp/chimera-chat-cancel-${randomUUID()}`
  const command = `echo begun; sleep 4.6692; touch ${marker}`
  llm.script({ toolCalls: [{ name: "run_command", args: { command, nodes: [node.name], timeout: 30 } }] })
  const asked = await chatCall(cp.url, admin, "POST", `/chat/${chatId}/message`, { message: "run it" })
  const q = ((await asked.json()) as MessageResponse).pendingQuestion as Question
  expect(q.context).toBe(command)

  const t0 = performance.now()
  // The answer's stream opens once the approved action has run (its refusal would be the request's
  // error): the turn is cancelled while the request waits.
  const approving = chatCall(cp.url, admin, "POST", `/chat/${chatId}/answer/stream`, {
    questionId: q.id,
    positive: true,
    selectedOption: -1,
  })
  const sleeping = async () => (await node.node.exec(["pgrep", "-f", "^sleep 4[.]6692"]))?.code === 0
  await waitFor("the approved command running on the node", sleeping, Boolean, 10_000)
  const cancelled = await chatCall(cp.url, admin, "POST", `/chat/${chatId}/cancel`, {})
  expect(cancelled.status).toBe(200)
  const approved = await approving
  expect(approved.status).toBe(200)
  const events = eventStream(approved).all()

  const tool = (await events).filter((e): e is Extract<ChatStreamEvent, { event: "tool" }> => e.event === "tool")
  expect(tool.map((e) => e.data.status)).toEqual(["started", "failed"])
  expect(tool[1]?.data.result).toMatchObject({
    results: [{ node: node.name, status: "cancelled", exit_code: null, stdout: "begun\n" }],
  })
  expect(performance.now() - t0).toBeLessThan(4500)
  expect(await sleeping()).toBe(false)
  await Bun.sleep(Math.max(0, 5500 - (performance.now() - t0)))
  expect(existsSync(marker)).toBe(false)
})
