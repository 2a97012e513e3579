// A chat's turn is one across control-plane replicas on one PostgreSQL database (a load balancer
// sends a user's requests to any replica): while replica A runs the turn, replica B refuses a second
// start as A would, says a turn runs, queues a steer for A's next model call, carries a cancel to A,
// and deletes the chat only once A's turn has stopped writing. A replica SIGKILLed mid-turn holds the
// chat until its lease lapses (a client following the turn through the other is then told it is
// lost); then the chat goes on through the other. The model is the wire-exact
// Anthropic server (wire-llm-server.ts), its answer held mid-stream to act during the turn.
import { expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SQL } from "bun"
import { turnEventStore } from "../control/adapters/store/turn-event-store.ts"
import type { ChatState, MessageResponse } from "../protocol/ai.ts"
import { aiSettingsFor, chatCall, doneOf, eventStream } from "./support/ai-chat.ts"
import { chatReplicaSuite, twoReplicas as sharedTwoReplicas } from "./support/chat-replicas.ts"
import { freePort, spawnControlPlane, startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import type { LlmServer } from "./support/llm-server.ts"
import { waitFor } from "./support/wait.ts"
import { at, call, held, heldMessage, newChat, reply, state } from "./support/wire-chat.ts"
import { anthropicEvents, sseEvent, type WireReply } from "./support/wire-llm-server.ts"

setDefaultTimeout(90_000)

const suite = chatReplicaSuite()

const twoReplicas = (name: string) => sharedTwoReplicas(suite.pg, suite.llm, name)

/** Starts a turn on `cp` whose model call is held mid-answer; resolves once the model has the call. */
const heldTurn = (cp: TestControlPlane, chatId: number) =>
  heldMessage(suite.llm, cp, chatId, reply("anthropic", "Looking at the fleet."), "how is web-1?")

/** The model's words, held (by heldMessage) after the first of them. */
function firstWordsHeld(...words: string[]): WireReply {
  const events = anthropicEvents({ blocks: [{ text: words }], stopReason: "end_turn" })
  const [start, ping, ...rest] = events.map(([name, data]) => sseEvent(name, data))
  return { pieces: [`${start}${ping}`, ...rest] }
}

async function errorCode(res: Response): Promise<[number, string | undefined]> {
  return [res.status, ((await res.json()) as { code?: string }).code]
}

test("a second message through B while A runs the chat's turn is refused as on one replica, and B says a turn runs", async () => {
  await using r = await twoReplicas("turns_second_message")
  const chatId = await newChat(r.a)
  const turn = await heldTurn(r.a, chatId)
  expect(await errorCode(await call(r.b, "POST", `/chat/${chatId}/message`, { message: "and web-2?" }))).toEqual([
    409,
    "TURN_RUNNING",
  ])
  expect((await state(r.b, chatId)).turnRunning).toBe(true)
  // A model change waits for the turn, wherever it runs.
  expect(await errorCode(await call(r.b, "PATCH", `/chat/${chatId}`, {}))).toEqual([409, "TURN_RUNNING"])
  turn.release()
  expect(doneOf(await turn.stream.all()).response).toBe("Looking at the fleet.")
  // The final state is read through B at once: the turn's answer, and no turn running.
  const after = await state(r.b, chatId)
  expect(after.turnRunning).toBe(false)
  expect(after.messages.map((m) => [m.role, m.content])).toEqual([
    ["user", "how is web-1?"],
    ["assistant", "Looking at the fleet."],
  ])
  expect(suite.llm.requests.length).toBe(turn.request + 1)
})

test("two messages sent at once through A and B start one turn: the other is refused", async () => {
  await using r = await twoReplicas("turns_racing")
  const chatId = await newChat(r.a)
  const answer = held(reply("anthropic", "One turn."))
  suite.llm.script(answer.reply)
  const sent = [r.a, r.b].map((cp) => call(cp, "POST", `/chat/${chatId}/message`, { message: "status?" }))
  // The winner's model answer is held, so the first reply to come back is the loser's.
  const first = await Promise.race(sent)
  expect(await errorCode(first)).toEqual([409, "TURN_RUNNING"])
  answer.release()
  const statuses = (await Promise.all(sent)).map((res) => res.status).sort()
  expect(statuses).toEqual([200, 409])
  expect((await state(r.a, chatId)).messages.map((m) => m.role)).toEqual(["user", "assistant"])
})

test("a steer through B reaches the model in A's turn at its next model call", async () => {
  await using r = await twoReplicas("turns_steer")
  const chatId = await newChat(r.a)
  const turn = await heldTurn(r.a, chatId)
  const steered = await call(r.b, "POST", `/chat/${chatId}/steer`, { message: "only web-1, please" })
  expect(steered.status).toBe(200)
  expect(await steered.json()).toEqual({ success: true, queuedBehind: "turn", questionId: null })
  suite.llm.script(reply("anthropic", "Only web-1, then."))
  turn.release()
  const done = doneOf(await turn.stream.all())
  expect(done.response).toBe("Looking at the fleet.\n\nOnly web-1, then.")
  // A's second call carries the steer after its first answer.
  expect(at(suite.llm, turn.request + 1, "only web-1, please")).toBeGreaterThan(
    at(suite.llm, turn.request + 1, "Looking at the fleet."),
  )
  expect((await state(r.b, chatId)).queuedMessages).toEqual([])
})

test("a cancel through B stops A's turn as a local cancel does", async () => {
  await using r = await twoReplicas("turns_cancel")
  const chatId = await newChat(r.a)
  const turn = await heldTurn(r.a, chatId)
  const cancelled = await call(r.b, "POST", `/chat/${chatId}/cancel`)
  expect(cancelled.status).toBe(200)
  expect(await cancelled.json()).toEqual({ success: true })
  const done = doneOf(await turn.stream.all())
  expect(done.cancelled).toBe(true)
  // The model call itself was cut, not left to run on.
  expect(suite.llm.requests[turn.request]?.abandoned).toBe(true)
  turn.release()
  const after = await state(r.b, chatId)
  expect(after.turnRunning).toBe(false)
  expect(after.messages.at(-1)?.content).toContain("cancelled")
  // The chat goes on through B.
  suite.llm.script(reply("anthropic", "Fine."))
  const next = await call(r.b, "POST", `/chat/${chatId}/message`, { message: "never mind" })
  expect(((await next.json()) as MessageResponse).response).toBe("Fine.")
})

/** How many rows of each of the chat's tables are left in the store. */
async function rowsLeft(url: string, chatId: number) {
  const db = new SQL(url)
  try {
    const left: Record<string, number | undefined> = {}
    for (const table of ["ai_messages", "ai_queued", "ai_questions", "ai_turns", "ai_turn_events"]) {
      const rows = (await db.unsafe(`SELECT count(*)::int AS n FROM ${table} WHERE chat_id = $1`, [chatId])) as {
        n: number
      }[]
      left[table] = rows[0]?.n
    }
    return left
  } finally {
    await db.close()
  }
}

const NONE_LEFT = { ai_messages: 0, ai_queued: 0, ai_questions: 0, ai_turns: 0, ai_turn_events: 0 }

test("a delete through B stops A's turn first: no row of the chat outlives it", async () => {
  await using r = await twoReplicas("turns_delete")
  const chatId = await newChat(r.a)
  const turn = await heldTurn(r.a, chatId)
  const deleted = await call(r.b, "DELETE", `/chat/${chatId}`)
  expect(deleted.status).toBe(200)
  // Whatever A's turn would still say comes too late to be written.
  turn.release()
  const events = await turn.stream.all()
  expect(events.at(-1)?.event).toMatch(/^(done|error)$/)
  expect(await errorCode(await call(r.a, "GET", `/chat/${chatId}`))).toEqual([404, "CHAT_NOT_FOUND"])
  expect(await rowsLeft(r.url, chatId)).toEqual(NONE_LEFT)
})

// A turn's last events are written for followers after its lease is released (turns.ts), so a delete
// that comes between the two (through the replica running the turn, which stops it and then deletes, or
// through another one) went first: the turn's events, the model's words among them, stayed in the store
// for a chat that no longer existed, with nothing left to remove them. Which comes first is a race;
// the late write is therefore also made here as the turn's replica makes it, after the delete.
test("a delete through the replica running the turn leaves no row either: its last events are not written for a deleted chat", async () => {
  await using r = await twoReplicas("turns_delete_here")
  const chatId = await newChat(r.a)
  // Held after its first words, which the turn has said (and not yet written) when the delete comes.
  const turn = await heldMessage(suite.llm, r.a, chatId, firstWordsHeld("Looking ", "at the fleet."), "how is web-1?")
  const [opening] = await turn.stream.until((events) => events.some((e) => e.event === "token"))
  const turnId = opening?.event === "turn" ? opening.data.turnId : ""
  expect((await call(r.a, "DELETE", `/chat/${chatId}`)).status).toBe(200)
  const events = await turn.stream.all()
  expect(events.at(-1)?.event).toMatch(/^(done|error)$/)
  const db = new SQL(r.url)
  try {
    await turnEventStore(db).append(chatId, turnId, events.slice(1), false)
  } finally {
    await db.close()
  }
  expect(await rowsLeft(r.url, chatId)).toEqual(NONE_LEFT)
})

test("a replica SIGKILLed mid-turn holds the chat until its lease lapses; then the chat goes on through another", async () => {
  const url = await suite.pg.database("turns_killed")
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-chat-turns-killed-"))
  const a = await spawnControlPlane(freePort(), {
    dataDir,
    databaseUrl: url,
    env: {
      CHIMERA_AI_PROVIDER: "anthropic",
      CHIMERA_AI_MODEL: "claude-test-1",
      CHIMERA_AI_BASE_URL: suite.llm.baseUrl,
      CHIMERA_AI_API_KEY: suite.llm.apiKey,
      CHIMERA_AI_TURN_LEASE_SECONDS: "3",
    },
  })
  try {
    await using b = await startInProcess({
      dataDir,
      databaseUrl: url,
      adminToken: a.adminToken,
      ai: aiSettingsFor(suite.llm as unknown as LlmServer),
    })
    const chatId = await newChat(b)
    const turn = await heldTurn(a, chatId)
    // A client following the turn through B (GET /follow) is told when it is lost, not left waiting.
    const followed = eventStream(await chatCall(b.url, b.adminToken, "GET", `/chat/${chatId}/follow`))
    await followed.until((events) => events.length > 0)
    await a.kill()
    turn.release()
    // Until the lease lapses the chat is the dead replica's turn's: B says so rather than start another.
    expect(
      await errorCode(await chatCall(b.url, b.adminToken, "POST", `/chat/${chatId}/message`, { message: "hello?" })),
    ).toEqual([409, "TURN_RUNNING"])
    const lapsed = await waitFor(
      "the dead replica's lease to lapse",
      () => state(b, chatId),
      (s: ChatState) => !s.turnRunning,
      10_000,
    )
    expect(lapsed.messages.map((m) => m.role)).toEqual(["user"])
    const lost = await followed.all()
    expect(lost.map((e) => e.event)).toEqual(["turn", "error"])
    expect(lost.at(-1)?.data).toMatchObject({ code: "TURN_ENDED" })
    suite.llm.script(reply("anthropic", "web-1 is fine."))
    const next = await chatCall(b.url, b.adminToken, "POST", `/chat/${chatId}/message`, { message: "hello?" })
    expect(next.status).toBe(200)
    expect(((await next.json()) as MessageResponse).response).toBe("web-1 is fine.")
    // The dead turn's question reaches the model with the new one, in order.
    const sent = suite.llm.requests.length - 1
    expect(at(suite.llm, sent, "how is web-1?")).toBeLessThan(at(suite.llm, sent, "hello?"))
  } finally {
    await a.kill()
    await rm(dataDir, { recursive: true, force: true })
  }
})

test("a replica stopped mid-turn (SIGTERM) ends the turn and lets the chat go: the next message through another is taken at once", async () => {
  await using r = await twoReplicas("turns_stopped")
  const chatId = await newChat(r.a)
  const turn = await heldTurn(r.a, chatId)
  await r.a.stop()
  turn.release()
  // The stop closed the stream's connection; what the turn said is stored.
  await turn.stream.all().catch(() => [])
  expect((await state(r.b, chatId)).messages.at(-1)?.content).toContain("cancelled")
  suite.llm.script(reply("anthropic", "Still here."))
  const next = await call(r.b, "POST", `/chat/${chatId}/message`, { message: "hello?" })
  expect(next.status).toBe(200)
  expect(((await next.json()) as MessageResponse).response).toBe("Still here.")
})
