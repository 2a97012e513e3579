// The fleet's event log in the store: an agent's numbered reports (each stored once, whatever it
// resends), the control plane's own events, the filtered pages and the tail that the API, the event
// streams and MCP read, and the pruning of old ones.
import type { SQL } from "bun"
import type { FleetEvent, NewEvent } from "../../domain/events.ts"
import type { EventQuery, StorePort } from "../../domain/ports.ts"
import { num, str } from "./columns.ts"
import { fittingRows } from "./page-bytes.ts"

type Row = Record<string, unknown>

/** Thrown to roll back a report batch whose node was removed while it was written. */
class _RemovedMeanwhile extends Error {}

/** Events deleted per statement when old ones are pruned. */
const PRUNE_BATCH = 5000

export function toEvent(r: Row): FleetEvent {
  return {
    id: num(r.id),
    type: String(r.type) as FleetEvent["type"],
    nodeId: str(r.node_id),
    at: String(r.at),
    data: JSON.parse(String(r.data)) as Record<string, unknown>,
  }
}

export type EventStore = Pick<
  StorePort,
  "appendReports" | "appendEvent" | "listEvents" | "eventTailStart" | "pruneEvents"
>

export function eventStore(db: SQL): EventStore {
  /** The WHERE clause of an event query: after an id, of a node, of some types. */
  const eventsMatching = (q: EventQuery) => db`
    WHERE id > ${q.afterId ?? 0}
      ${q.nodeId === undefined ? db`` : db`AND node_id = ${q.nodeId}`}
      ${q.types?.length ? db`AND type IN ${db(q.types)}` : db``}`

  const insertEvent = async (tx: SQL, e: NewEvent, epoch: number | null): Promise<FleetEvent | null> => {
    const rows: Row[] = await tx`
      INSERT INTO events (type, node_id, at, received_at, data, agent_epoch, agent_seq)
      VALUES (${e.type}, ${e.nodeId}, ${e.at}, ${e.receivedAt ?? new Date().toISOString()}, ${JSON.stringify(e.data)}, ${epoch}, ${e.agentSeq ?? null})
      ON CONFLICT (node_id, agent_epoch, agent_seq) DO NOTHING
      RETURNING id, type, node_id, at, data`
    return rows[0] ? toEvent(rows[0]) : null
  }

  return {
    async appendReports(nodeId, events) {
      // A batch authenticated before its node's removal may arrive after it: the node is gone, and so
      // are its reports (stored, a failed heal would open an incident nobody could resolve). The last
      // write of the batch is to the node's row and checks again: a removal that committed meanwhile
      // undoes the batch, and one not yet committed waits for it and comes after (its node.removed
      // resolves what the batch opened).
      try {
        return await db.begin(async (tx) => {
          const nodes: Row[] = await tx`SELECT epoch, acked_seq, removed_at FROM nodes WHERE id = ${nodeId}`
          if (nodes[0]?.removed_at != null) return null
          const epoch = num(nodes[0]?.epoch)
          let acked = num(nodes[0]?.acked_seq)
          const stored: FleetEvent[] = []
          for (const e of events) {
            if ((e.agentSeq ?? 0) <= acked) continue
            const inserted = await insertEvent(tx, e, epoch)
            if (inserted) stored.push(inserted)
            acked = e.agentSeq ?? acked
          }
          const kept: Row[] =
            await tx`UPDATE nodes SET acked_seq = ${acked} WHERE id = ${nodeId} AND removed_at IS NULL RETURNING id`
          if (nodes[0] && kept.length === 0) throw new _RemovedMeanwhile()
          return { ackedSeq: acked, stored }
        })
      } catch (error) {
        if (error instanceof _RemovedMeanwhile) return null
        throw error
      }
    },

    async appendEvent(event) {
      const inserted = await insertEvent(db, event, null)
      if (!inserted) throw new Error("event was not stored")
      return inserted
    },

    async listEvents(q: EventQuery) {
      let limit = q.limit
      let upTo = db``
      if (q.maxBytes !== undefined) {
        // Sizes first (octet_length reads no data), then only the events that fit, up to the last of
        // them: one stored in between (a replica's, with a lower id) cannot take one's place.
        const sizes: { id: unknown; size: unknown }[] =
          await db`SELECT id, octet_length(data) AS size FROM events ${eventsMatching(q)} ORDER BY id LIMIT ${limit}`
        limit = fittingRows(sizes, q.maxBytes)
        if (limit === 0) return []
        upTo = db`AND id <= ${num(sizes[limit - 1]?.id)}`
      }
      const rows: Row[] = await db`
        SELECT id, type, node_id, at, data FROM events ${eventsMatching(q)} ${upTo} ORDER BY id LIMIT ${limit}`
      return rows.map(toEvent)
    },

    async eventTailStart(q: EventQuery) {
      // Ids and sizes only: a stream that starts with a backlog of large reports reads them in pages
      // after this; without maxBytes every one of the last `limit` fits.
      const newest: { id: unknown; size: unknown }[] = await db`
        SELECT id, octet_length(data) AS size FROM events ${eventsMatching(q)} ORDER BY id DESC LIMIT ${q.limit}`
      const fit = fittingRows(newest, q.maxBytes ?? Number.POSITIVE_INFINITY)
      return fit === 0 ? null : num(newest[fit - 1]?.id)
    },

    async pruneEvents(receivedBefore) {
      // A batch at a time, so other writers (heartbeats, reports) get the database between batches.
      let pruned = 0
      for (;;) {
        const rows: Row[] = await db`
          DELETE FROM events WHERE id IN (
            SELECT id FROM events WHERE received_at < ${receivedBefore} ORDER BY received_at LIMIT ${PRUNE_BATCH}
          ) RETURNING id`
        pruned += rows.length
        if (rows.length < PRUNE_BATCH) return pruned
        await new Promise((resolve) => setImmediate(resolve))
      }
    },
  }
}
