// The chat's store on PostgreSQL (several control-plane replicas share one): the migration applies,
// a chat made on one replica is read on another with its messages and pending question, and two
// answers racing for one question on the two replicas settle it once (one 200, one 409), and a steer
// sent to the replica not running the turn waits behind the question in the shared store.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { ChatState, MessageResponse } from "../protocol/ai.ts"
import { aiSettingsFor, chatCall } from "./support/ai-chat.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, startLlmServer } from "./support/llm-server.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { healFailed, simAgent } from "./support/sim-agent.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(60_000)

let pg: TestPostgres
let llm: LlmServer

beforeAll(async () => {
  pg = await startPostgres()
  llm = await startLlmServer("openai", { fallback: { text: "Noted." } })
}, 60_000)
afterAll(async () => {
  await llm?.stop()
  await pg?.stop()
})

/** "fix nginx" through `cp`, whose model proposes a restart: the question it asks. */
async function askRestart(cp: TestControlPlane, chatId: number) {
  llm.script({
    text: "Shall I?",
    toolCalls: [{ name: "run_command", args: { command: "systemctl restart nginx", nodes: ["web-1"] } }],
  })
  const res = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/message`, { message: "fix nginx" })
  return ((await res.json()) as MessageResponse).pendingQuestion
}

test("two replicas on one PostgreSQL share chats, and a question is answered once", async () => {
  const url = await pg.database("chat_replicas")
  // Replicas share the data dir's admin token as they share the database.
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-pg-"))
  await using a = await startInProcess({ dataDir, databaseUrl: url, ai: aiSettingsFor(llm) })
  await using b = await startInProcess({ dataDir, databaseUrl: url, ai: aiSettingsFor(llm) })
  const created = await chatCall(a.url, a.adminToken, "POST", "/chat", {})
  expect(created.status).toBe(201)
  const { chatId } = (await created.json()) as { chatId: number }
  const q = await askRestart(a, chatId)
  expect(q?.context).toBe("systemctl restart nginx")

  // The other replica sees the chat as its owner left it.
  const seen = await chatCall(b.url, b.adminToken, "GET", `/chat/${chatId}`)
  expect(seen.status).toBe(200)
  const state = (await seen.json()) as ChatState
  expect(state.messages.map((m) => m.role)).toEqual(["user", "assistant"])
  expect(state.pendingQuestion).toEqual(q)

  const answers = await Promise.all([
    chatCall(a.url, a.adminToken, "POST", `/chat/${chatId}/answer`, { questionId: q?.id, positive: false, wait: true }),
    chatCall(b.url, b.adminToken, "POST", `/chat/${chatId}/answer`, { questionId: q?.id, positive: false, wait: true }),
  ])
  const statuses = answers.map((r) => r.status).sort()
  expect(statuses).toEqual([200, 409])
  const codes = await Promise.all(answers.map(async (r) => ((await r.json()) as { code?: string }).code))
  // The loser finds the question settled, or (as on one replica) the winner's turn holding the chat.
  const lost = codes.filter((c) => c !== undefined)
  expect(lost).toHaveLength(1)
  expect(["QUESTION_INVALID", "TURN_RUNNING"]).toContain(lost[0] as string)
  const after = (await (await chatCall(a.url, a.adminToken, "GET", `/chat/${chatId}`)).json()) as ChatState
  // One rejection reached the model: one tool result, one answer after it.
  expect(after.messages.filter((m) => m.role === "tool").length).toBe(1)
  expect(after.pendingQuestion).toBeNull()
  await rm(dataDir, { recursive: true, force: true })
})

test("on PostgreSQL a chat is bound to an incident's UUID and to a fleet event's number, and read back as given", async () => {
  const url = await pg.database("chat_incidents")
  await using cp = await startInProcess({ databaseUrl: url, ai: aiSettingsFor(llm) })
  const node = await simAgent(cp, "pg-1")
  await node.report(healFailed())
  const incidents = await waitFor(
    "the heal failure's incident",
    async () =>
      ((await (await cp.api("/api/incidents?node=pg-1")).json()) as { incidents: { id: string }[] }).incidents,
    (is) => is.length === 1,
  )
  const incidentId = incidents[0]?.id as string
  const created = await chatCall(cp.url, cp.adminToken, "POST", "/chat", { incidentId })
  expect(created.status).toBe(201)
  const { chatId } = (await created.json()) as { chatId: number }
  const bound = (await (await chatCall(cp.url, cp.adminToken, "GET", `/chat/${chatId}`)).json()) as ChatState
  expect(bound.context).toEqual({ nodeId: null, incidentId })
  const events = (await (await cp.api("/api/events?node=pg-1")).json()) as { events: { id: number }[] }
  const eventId = events.events[0]?.id as number
  const rebound = await chatCall(cp.url, cp.adminToken, "PATCH", `/chat/${chatId}`, { incidentId: eventId })
  expect(rebound.status).toBe(200)
  expect(((await rebound.json()) as ChatState).context).toEqual({ nodeId: null, incidentId: eventId })
})

test("on PostgreSQL a steer sent to another replica waits behind the question and follows its answer; compaction keeps it", async () => {
  const url = await pg.database("chat_steer_replicas")
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-pg-steer-"))
  await using a = await startInProcess({ dataDir, databaseUrl: url, ai: aiSettingsFor(llm) })
  await using b = await startInProcess({ dataDir, databaseUrl: url, ai: aiSettingsFor(llm) })
  const { chatId } = (await (await chatCall(a.url, a.adminToken, "POST", "/chat", {})).json()) as { chatId: number }
  llm.script({ text: "Hi." })
  await chatCall(a.url, a.adminToken, "POST", `/chat/${chatId}/message`, { message: "hello" })
  const q = await askRestart(a, chatId)
  // Replica b runs no turn of this chat, but the question waits in the shared store.
  const steered = await chatCall(b.url, b.adminToken, "POST", `/chat/${chatId}/steer`, { message: "web-1 only" })
  expect(await steered.json()).toEqual({ success: true, queuedBehind: "question", questionId: q?.id })
  expect(
    ((await (await chatCall(a.url, a.adminToken, "GET", `/chat/${chatId}`)).json()) as ChatState).queuedMessages,
  ).toMatchObject([{ content: "web-1 only" }])

  llm.script({ text: "Not restarting." })
  const answered = await chatCall(a.url, a.adminToken, "POST", `/chat/${chatId}/answer`, {
    questionId: q?.id,
    positive: false,
    wait: true,
  })
  expect(answered.status).toBe(200)
  const sent = JSON.stringify(llm.requests.at(-1)?.body.messages)
  expect(sent.indexOf("web-1 only")).toBeGreaterThan(sent.indexOf("rejected this action"))

  llm.script({ text: "Earlier: a greeting." })
  const compacted = await chatCall(b.url, b.adminToken, "POST", `/chat/${chatId}/compact`)
  expect(((await compacted.json()) as { summarisedMessages: number }).summarisedMessages).toBe(5)
  const after = (await (await chatCall(a.url, a.adminToken, "GET", `/chat/${chatId}`)).json()) as ChatState
  // Everything before the latest user message, the steer, is summarised (the summary is first).
  expect(after.messages.map((m) => m.content)).toEqual(["Earlier: a greeting.", "web-1 only", "Not restarting."])
  await rm(dataDir, { recursive: true, force: true })
})
