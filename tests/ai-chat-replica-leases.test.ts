// A chat's turn lease across control-plane replicas whose clocks disagree, and what a cancel names:
// the lease's term is set and judged by the database's clock, so a replica whose clock runs a minute
// ahead does not take over a live turn; a cancel that names a turn stops that turn and no later one.
// The model is the wire-exact Anthropic server (wire-llm-server.ts), its answer held mid-stream.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { doneOf } from "./support/ai-chat.ts"
import { twoReplicas } from "./support/chat-replicas.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { call, heldMessage, newChat, reply, state } from "./support/wire-chat.ts"
import { startWireLlmServer, type WireLlmServer } from "./support/wire-llm-server.ts"

setDefaultTimeout(90_000)

let pg: TestPostgres
let llm: WireLlmServer

beforeAll(async () => {
  pg = await startPostgres()
  llm = await startWireLlmServer("anthropic")
}, 60_000)
afterAll(async () => {
  await llm?.stop()
  await pg?.stop()
})

async function errorCode(res: Response): Promise<[number, string | undefined]> {
  return [res.status, ((await res.json()) as { code?: string }).code]
}

test("a replica whose clock runs a minute ahead still sees another's live turn: its message is refused, the turn goes on", async () => {
  const ahead = { now: () => new Date(Date.now() + 60_000) }
  await using r = await twoReplicas(pg, llm, "leases_clock_ahead", { clockB: ahead })
  const chatId = await newChat(r.a)
  const turn = await heldMessage(llm, r.a, chatId, reply("anthropic", "Looking at the fleet."), "how is web-1?")
  expect((await state(r.b, chatId)).turnRunning).toBe(true)
  expect(await errorCode(await call(r.b, "POST", `/chat/${chatId}/message`, { message: "and web-2?" }))).toEqual([
    409,
    "TURN_RUNNING",
  ])
  turn.release()
  // A's turn was not taken over: it ends as it would alone.
  expect(doneOf(await turn.stream.all()).response).toBe("Looking at the fleet.")
})

test("a cancel naming a turn that has ended is 409 TURN_ENDED and leaves the chat's next turn, on another replica, running", async () => {
  await using r = await twoReplicas(pg, llm, "leases_cancel_named")
  const chatId = await newChat(r.a)
  const first = await heldMessage(llm, r.a, chatId, reply("anthropic", "First."), "one")
  const [opening] = await first.stream.until((events) => events.length > 0)
  expect(opening?.event).toBe("turn")
  const firstId = opening?.event === "turn" ? opening.data.turnId : ""
  expect((await state(r.b, chatId)).turnId).toBe(firstId)
  first.release()
  expect(doneOf(await first.stream.all()).response).toBe("First.")
  // The chat's next turn runs on B; the cancel meant for the first arrives late, through A.
  const second = await heldMessage(llm, r.b, chatId, reply("anthropic", "Second."), "two")
  const secondId = (await state(r.a, chatId)).turnId
  expect(secondId).not.toBeNull()
  expect(secondId).not.toBe(firstId)
  expect((await call(r.a, "POST", `/chat/${chatId}/cancel`, { turnId: 5 })).status).toBe(422)
  const late = await call(r.a, "POST", `/chat/${chatId}/cancel`, { turnId: firstId })
  expect(await errorCode(late)).toEqual([409, "TURN_ENDED"])
  second.release()
  const done = doneOf(await second.stream.all())
  expect(done.response).toBe("Second.")
  expect(done.cancelled).toBeUndefined()
  // Named while it runs, the turn is cancelled wherever it runs.
  const third = await heldMessage(llm, r.b, chatId, reply("anthropic", "Third."), "three")
  const thirdId = (await state(r.a, chatId)).turnId
  const named = await call(r.a, "POST", `/chat/${chatId}/cancel`, { turnId: thirdId })
  expect(named.status).toBe(200)
  expect(doneOf(await third.stream.all()).cancelled).toBe(true)
  third.release()
})
