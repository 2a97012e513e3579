// The id of the newest stored event: where a client that has seen no event yet resumes from, so a
// stream it opens (and reopens with Last-Event-ID) misses nothing that happens after it asked.
import type { SQL } from "bun"

export function eventCursor(db: SQL) {
  return {
    async lastId(): Promise<number> {
      const rows: { id: unknown }[] = await db`SELECT MAX(id) AS id FROM events`
      return Number(rows[0]?.id ?? 0)
    },
  }
}

export type EventCursor = ReturnType<typeof eventCursor>
