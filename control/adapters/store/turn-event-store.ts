// A running turn's events as its replica published them (`ai_turn_events`), for clients following the
// turn through another replica (turn-feed.ts). Rows are per turn (its lease id) and kept until the
// chat's next turn writes its first, or the chat is deleted: a follower that arrives late reads the
// turn from its start, and one that fell behind catches up from its last row id.
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
        if (first) await tx`DELETE FROM ai_turn_events WHERE chat_id = ${chatId} AND turn <> ${turn}`
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
