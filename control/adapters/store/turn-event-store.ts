// A running turn's events as its replica published them (`ai_turn_events`), for clients following the
// turn through another replica (turn-feed.ts). Rows are per turn (its lease id) and kept until the
// turn after the chat's next one writes its first, or the chat is deleted (and none is written for a
// deleted chat): a follower that arrives late reads the turn from its start, and one that fell behind
// catches up from its last row id. PostgreSQL only: on SQLite, turns are followed from memory.
import type { SQL } from "bun"
import type { ChatStreamEvent } from "../../../protocol/ai.ts"
import { PAGE, type TurnEventStore } from "../../ai/turn-feed.ts"
import type { Migration } from "./migrations.ts"

export const TURN_EVENT_MIGRATIONS: Migration[] = [
  {
    version: 19,
    name: "a running turn's events, for following it through another replica",
    statements: (d) => [
      `CREATE TABLE ai_turn_events (
        id ${d === "postgres" ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"},
        chat_id BIGINT NOT NULL,
        turn TEXT NOT NULL,
        body TEXT NOT NULL
      )`,
      "CREATE INDEX ai_turn_events_by_turn ON ai_turn_events (chat_id, turn, id)",
    ],
  },
]

export function turnEventStore(db: SQL): TurnEventStore {
  return {
    async append(chatId, turn, events, first) {
      await db.begin(async (tx) => {
        // A turn's last events come after its lease is released, so its chat may be deleted by then:
        // written for it, they would outlive it with nothing left to remove them. The chat's row is held
        // (KEY SHARE: a delete's FOR UPDATE waits for this write, then removes what it wrote) or is gone.
        const chat: unknown[] = await tx`SELECT id FROM ai_chats WHERE id = ${chatId} FOR KEY SHARE`
        if (chat.length === 0) return
        // The turn just before stays: a follower that has not yet read its last event (a message sent
        // the moment it ended) would otherwise find its rows gone and be told it stopped unfinished.
        if (first)
          await tx`
            DELETE FROM ai_turn_events WHERE chat_id = ${chatId} AND turn <> ${turn} AND turn <> COALESCE((
              SELECT turn FROM ai_turn_events WHERE chat_id = ${chatId} AND turn <> ${turn} ORDER BY id DESC LIMIT 1), '')`
        for (const e of events)
          await tx`INSERT INTO ai_turn_events (chat_id, turn, body) VALUES (${chatId}, ${turn}, ${JSON.stringify(e)})`
      })
    },
    async since(chatId, turn, afterId) {
      const rows: { id: number | string; body: string }[] = await db`
        SELECT id, body FROM ai_turn_events WHERE chat_id = ${chatId} AND turn = ${turn} AND id > ${afterId}
        ORDER BY id LIMIT ${PAGE}`
      return rows.map((r) => ({ id: Number(r.id), event: JSON.parse(r.body) as ChatStreamEvent }))
    },
  }
}
