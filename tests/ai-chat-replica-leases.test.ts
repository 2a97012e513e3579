// A chat's turn lease across control-plane replicas whose clocks disagree, what a cancel names, and
// whose clock expires a question: the lease's term is set and judged by the database's clock, so a
// replica whose clock runs a minute ahead does not take over a live turn; a cancel that names a turn
// stops that turn and no later one; a question expires on time though the replica that asked it stopped.
// The model is the wire-exact Anthropic server (wire-llm-server.ts), its answer held mid-stream.
import { expect, setDefaultTimeout, test } from "bun:test"
import { SQL } from "bun"
import { aiSettingsFor, doneOf } from "./support/ai-chat.ts"
import { chatReplicaSuite, twoReplicas } from "./support/chat-replicas.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess } from "./support/control-plane.ts"
import type { LlmServer } from "./support/llm-server.ts"
import { waitFor } from "./support/wait.ts"
import { call, heldMessage, newChat, reply, state } from "./support/wire-chat.ts"

setDefaultTimeout(90_000)

const suite = chatReplicaSuite()

async function errorCode(res: Response): Promise<[number, string | undefined]> {
  return [res.status, ((await res.json()) as { code?: string }).code]
}

test("a replica whose clock runs a minute ahead still sees another's live turn: its message is refused, the turn goes on", async () => {
  const ahead = { now: () => new Date(Date.now() + 60_000) }
  await using r = await twoReplicas(suite.pg, suite.llm, "leases_clock_ahead", { clockB: ahead })
  const chatId = await newChat(r.a)
  const turn = await heldMessage(suite.llm, r.a, chatId, reply("anthropic", "Looking at the fleet."), "how is web-1?")
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
  await using r = await twoReplicas(suite.pg, suite.llm, "leases_cancel_named")
  const chatId = await newChat(r.a)
  const first = await heldMessage(suite.llm, r.a, chatId, reply("anthropic", "First."), "one")
  const [opening] = await first.stream.until((events) => events.length > 0)
  expect(opening?.event).toBe("turn")
  const firstId = opening?.event === "turn" ? opening.data.turnId : ""
  expect((await state(r.b, chatId)).turnId).toBe(firstId)
  first.release()
  expect(doneOf(await first.stream.all()).response).toBe("First.")
  // The chat's next turn runs on B; the cancel meant for the first arrives late, through A.
  const second = await heldMessage(suite.llm, r.b, chatId, reply("anthropic", "Second."), "two")
  const secondId = (await state(r.a, chatId)).turnId
  expect(secondId).not.toBeNull()
  expect(secondId).not.toBe(firstId)
  expect((await call(r.a, "POST", `/chat/${chatId}/cancel`, { turnId: 5 })).status).toBe(422)
  // Not a turn's id: refused as such, where a NUL reached PostgreSQL (which refuses it in text) as a 500.
  for (const turnId of ["\u0000", `${firstId}\u0000`, "' OR 1=1 --"]) {
    const hostile = await call(r.a, "POST", `/chat/${chatId}/cancel`, { turnId })
    expect({ status: hostile.status, said: await hostile.text() }).toEqual({
      status: 422,
      said: expect.stringContaining("expected a turn id"),
    })
  }
  const late = await call(r.a, "POST", `/chat/${chatId}/cancel`, { turnId: firstId })
  expect(await errorCode(late)).toEqual([409, "TURN_ENDED"])
  second.release()
  const done = doneOf(await second.stream.all())
  expect(done.response).toBe("Second.")
  expect(done.cancelled).toBeUndefined()
  // Named while it runs, the turn is cancelled wherever it runs.
  const third = await heldMessage(suite.llm, r.b, chatId, reply("anthropic", "Third."), "three")
  const thirdId = (await state(r.a, chatId)).turnId
  const named = await call(r.a, "POST", `/chat/${chatId}/cancel`, { turnId: thirdId })
  expect(named.status).toBe(200)
  expect(doneOf(await third.stream.all()).cancelled).toBe(true)
  third.release()
})

test("a question asked through a replica that then stops expires on time all the same: another replica expires it, unasked", async () => {
  await using r = await twoReplicas(suite.pg, suite.llm, "leases_question_expiry", { ai: { questionTtlSeconds: 2 } })
  const chatId = await newChat(r.a)
  suite.llm.script(reply("anthropic", "I will restart nginx.", true))
  const asked = (await (await call(r.a, "POST", `/chat/${chatId}/message`, { message: "fix nginx" })).json()) as {
    pendingQuestion: { id: number } | null
  }
  const questionId = asked.pendingQuestion?.id
  expect(questionId).toBeNumber()
  // A stops (or dies): its expiry timer goes with it. Nobody reads the chat meanwhile.
  await r.a.stop()
  const db = new SQL(r.url)
  try {
    const status = async () =>
      ((await db`SELECT status FROM ai_questions WHERE id = ${questionId}`) as { status: string }[])[0]?.status
    await waitFor("the question expired by B", status, (s) => s === "expired", 8_000)
    // The model's next call reads why the action did not run.
    const result = (await db`SELECT body FROM ai_messages WHERE chat_id = ${chatId} ORDER BY id`) as { body: string }[]
    expect(result.map((m) => JSON.parse(m.body).content as string).at(-1)).toContain("expired")
  } finally {
    await db.close()
  }
})

test("a message sent after a question's deadline, before anything expired it, records it as expired, not withdrawn", async () => {
  const clock = manualClock()
  await using cp = await startInProcess({ clock, ai: aiSettingsFor(suite.llm as unknown as LlmServer) })
  const chatId = await newChat(cp)
  suite.llm.script(reply("anthropic", "I will restart nginx.", true))
  expect((await call(cp, "POST", `/chat/${chatId}/message`, { message: "fix nginx" })).status).toBe(200)
  // Past the deadline by the control plane's clock; its timer (real time) has not fired.
  clock.advance(301_000)
  suite.llm.script(reply("anthropic", "Understood."))
  expect((await call(cp, "POST", `/chat/${chatId}/message`, { message: "never mind" })).status).toBe(200)
  const result = (await state(cp, chatId)).messages.find((m) => m.role === "tool")
  expect(result?.content).toContain("expired")
})
