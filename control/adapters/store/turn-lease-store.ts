// The chats' turn leases (`ai_turns`, one row per chat whose turn runs or whose holder died): taken
// by an upsert that replaces only a lapsed row, so two replicas starting a turn at once get one
// "taken" between them. On PostgreSQL the take holds the chat's row (FOR SHARE) and a delete locks it
// (FOR UPDATE, chat-store.ts), so a turn never takes the lease of a chat being deleted, nor a delete
// goes past a lease taken meanwhile. SQLite runs one transaction at a time (sqlite-turns.ts). Times
// are the database's on PostgreSQL (lease-clock.ts): a lease's term is set and judged by one clock.
import type { SQL } from "bun"
import type { TurnLeaseStore } from "../../ai/turn-lease.ts"
import type { Clock } from "../../domain/ports.ts"
import { leaseClock } from "./lease-clock.ts"
import type { Dialect } from "./migrations.ts"

export function turnLeaseStore(db: SQL, dialect: Dialect, clock: Clock): TurnLeaseStore {
  const now = leaseClock(dialect, clock)
  return {
    async takeTurn(chatId, lease, holder, leaseMs) {
      return db.begin(async (tx) => {
        const chat: unknown[] =
          dialect === "postgres"
            ? await tx`SELECT id FROM ai_chats WHERE id = ${chatId} FOR SHARE`
            : await tx`SELECT id FROM ai_chats WHERE id = ${chatId}`
        if (chat.length === 0) return "gone"
        const rows: { lease: string }[] = await tx`
          INSERT INTO ai_turns (chat_id, lease, holder, until_ms, accepting, cancel)
          VALUES (${chatId}, ${lease}, ${holder}, ${now(tx)} + ${leaseMs}, 1, 0)
          ON CONFLICT (chat_id) DO UPDATE SET lease = excluded.lease, holder = excluded.holder,
            until_ms = excluded.until_ms, accepting = 1, cancel = 0
          WHERE ai_turns.until_ms < ${now(tx)}
          RETURNING lease`
        return rows[0]?.lease === lease ? "taken" : "held"
      })
    },
    async renewTurn(chatId, lease, leaseMs) {
      const rows: { cancel: number | string }[] = await db`
        UPDATE ai_turns SET until_ms = ${now(db)} + ${leaseMs} WHERE chat_id = ${chatId} AND lease = ${lease} RETURNING cancel`
      return rows[0] ? { cancel: Number(rows[0].cancel) === 1 } : null
    },
    async acceptSteers(chatId, lease, accepting) {
      // The row's lock waits for a steer being queued under it (chat-store.ts queueMessage).
      await db`UPDATE ai_turns SET accepting = ${accepting ? 1 : 0} WHERE chat_id = ${chatId} AND lease = ${lease}`
    },
    async releaseTurn(chatId, lease) {
      await db`DELETE FROM ai_turns WHERE chat_id = ${chatId} AND lease = ${lease}`
    },
    async turnHolder(chatId) {
      const rows: { lease: string; holder: string }[] =
        await db`SELECT lease, holder FROM ai_turns WHERE chat_id = ${chatId} AND until_ms >= ${now(db)}`
      return rows[0] ? { lease: rows[0].lease, holder: rows[0].holder } : null
    },
    async requestCancel(chatId, lease) {
      // Named, only that turn: a cancel arriving after it ended must not reach the chat's next turn.
      const rows: unknown[] =
        lease === undefined
          ? await db`UPDATE ai_turns SET cancel = 1 WHERE chat_id = ${chatId} AND until_ms >= ${now(db)} RETURNING chat_id`
          : await db`UPDATE ai_turns SET cancel = 1
              WHERE chat_id = ${chatId} AND lease = ${lease} AND until_ms >= ${now(db)} RETURNING chat_id`
      return rows.length === 1
    },
    async clearTurns() {
      await db`DELETE FROM ai_turns`
    },
  }
}
