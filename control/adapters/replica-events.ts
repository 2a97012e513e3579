// The events this replica's live streams (SSE, the web dashboard) carry when several replicas share a
// PostgreSQL database: its own, as they are published, and every other replica's, read from the store
// by the ids their notifications name (replica-link.ts). Each event reaches the streams once: ids
// already handed on are remembered (a bounded window), so a notification repeated, or a catch-up that
// reads what was already delivered, doubles nothing. After the listening connection comes back, the
// events stored meanwhile are read from the store (from a little below the highest id seen, since
// PostgreSQL hands out ids before commit and a lower one can appear later). A notification naming
// events stored before this replica started, or long ago, is not read: it would replay history.
import type { SQL } from "bun"
import { createLogger } from "../../protocol/log.ts"
import type { FleetEvent } from "../domain/events.ts"
import type { EventBusPort } from "../domain/ports.ts"
import { createEventBus } from "./event-bus.ts"
import { toEvent } from "./store/event-store.ts"

const log = createLogger("replica-events")

/** Ids remembered as handed on. */
const REMEMBERED = 50_000
/** How far below the highest id seen a catch-up starts reading. */
const CATCH_UP_SLACK = 1000
const PAGE = 1000
/** Pages a catch-up reads at most; streams that fell further behind read the store themselves. */
const CATCH_UP_PAGES = 20

export interface ReplicaEvents {
  /** What the live streams subscribe to. */
  streams: EventBusPort
  /** Reads and hands on the events another replica stored. */
  stored(ids: number[]): Promise<void>
  /** Reads and hands on whatever was stored since a little below the highest id seen. */
  catchUp(): Promise<void>
  close(): void
}

export async function replicaEvents(
  db: SQL,
  local: EventBusPort,
  told: (ids: number[]) => void,
): Promise<ReplicaEvents> {
  const streams = createEventBus()
  const seen = new Set<number>()
  const top = (await db`SELECT COALESCE(MAX(id), 0) AS id FROM events`) as { id: unknown }[]
  let highest = Number(top[0]?.id ?? 0)
  // A notification's ids are anyone's word (any role that may connect may NOTIFY): what was stored
  // before this replica started is history, not news, so only ids above this floor, or within the
  // window of ids remembered, are read; the recent ones stored already count as handed on.
  const startFloor = Math.max(0, highest - CATCH_UP_SLACK)
  const floor = () => Math.max(startFloor, highest - REMEMBERED)
  const handOn = (events: FleetEvent[]) => {
    const fresh = events.filter((e) => !seen.has(e.id)).sort((a, b) => a.id - b.id)
    for (const e of fresh) {
      seen.add(e.id)
      if (e.id > highest) highest = e.id
    }
    // A Set iterates in insertion order: the oldest ids go first.
    for (const id of seen) {
      if (seen.size <= REMEMBERED) break
      seen.delete(id)
    }
    if (fresh.length > 0) streams.publish(fresh)
  }
  const unsubscribe = local.subscribe((event) => {
    handOn([event])
    told([event.id])
  })
  const stored = (await db`SELECT id FROM events WHERE id > ${startFloor}`) as { id: unknown }[]
  for (const row of stored) seen.add(Number(row.id))
  const read = async (ids: number[]) => {
    const wanted = ids.filter((id) => id > floor() && !seen.has(id))
    for (let i = 0; i < wanted.length; i += PAGE) {
      const part = wanted.slice(i, i + PAGE)
      const rows = (await db`SELECT id, type, node_id, at, data FROM events WHERE id IN ${db(part)}`) as Record<
        string,
        unknown
      >[]
      handOn(rows.map(toEvent))
    }
  }

  return {
    streams,
    stored: (ids) =>
      read(ids).catch((error: unknown) => log.warn("reading another replica's events failed", { error })),
    async catchUp() {
      let after = Math.max(0, highest - CATCH_UP_SLACK)
      for (let page = 0; page < CATCH_UP_PAGES; page++) {
        const rows =
          (await db`SELECT id, type, node_id, at, data FROM events WHERE id > ${after} ORDER BY id LIMIT ${PAGE}`) as Record<
            string,
            unknown
          >[]
        const events = rows.map(toEvent)
        handOn(events)
        if (events.length < PAGE) return
        after = events.at(-1)?.id ?? after
      }
      log.warn("catching up on other replicas' events stopped after its page limit", { after })
    },
    close: unsubscribe,
  }
}
