// The turns' events kept for followers on other replicas (ai_turn_events), on a real PostgreSQL: a
// chat's newest turn and the one just before it stay, so a follower of a turn that has just ended reads
// its `done` even when the chat's next message started a turn the moment it ended; older turns go.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { SQL } from "bun"
import { CHAT_MIGRATIONS } from "../control/adapters/store/chat-store.ts"
import { TURN_EVENT_MIGRATIONS, turnEventStore } from "../control/adapters/store/turn-event-store.ts"
import type { ChatStreamEvent } from "../protocol/ai.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"

setDefaultTimeout(60_000)

let pg: TestPostgres
beforeAll(async () => {
  pg = await startPostgres()
})
afterAll(async () => {
  await pg?.stop()
})

const words = (text: string): ChatStreamEvent => ({ event: "token", data: { text } })

test("a chat's next turn keeps the turn just ended for its followers; the one after drops it", async () => {
  const db = new SQL(await pg.database("turn_events"))
  try {
    for (const m of [...CHAT_MIGRATIONS.slice(0, 1), ...TURN_EVENT_MIGRATIONS])
      for (const statement of m.statements("postgres")) await db.unsafe(statement)
    const [chat] = (await db`
      INSERT INTO ai_chats (owner_subject, owner_name, created_at, model)
      VALUES ('u1', 'olga', ${new Date().toISOString()}, 'm') RETURNING id`) as { id: string }[]
    const chatId = Number(chat?.id)
    const store = turnEventStore(db)
    const texts = async (turn: string) =>
      (await store.since(chatId, turn, 0)).map((r) => (r.event.event === "token" ? r.event.data.text : r.event.event))
    await store.append(chatId, "turn-1", [words("one")], true)
    await store.append(chatId, "turn-1", [words("done-one")], false)
    // The next message starts turn 2 before turn 1's follower has read its last event.
    await store.append(chatId, "turn-2", [words("two")], true)
    expect(await texts("turn-1")).toEqual(["one", "done-one"])
    expect(await texts("turn-2")).toEqual(["two"])
    // Turn 3: turn 1 goes, turn 2 (the one just before) stays.
    await store.append(chatId, "turn-3", [words("three")], true)
    expect(await texts("turn-1")).toEqual([])
    expect(await texts("turn-2")).toEqual(["two"])
    expect(await texts("turn-3")).toEqual(["three"])
    const [count] = (await db`SELECT COUNT(*) AS n FROM ai_turn_events WHERE chat_id = ${chatId}`) as { n: string }[]
    expect(Number(count?.n)).toBe(2)
  } finally {
    await db.close()
  }
})
