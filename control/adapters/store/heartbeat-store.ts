// Heartbeats in the SQL store (sql-store.ts): how one is written, batched on PostgreSQL and through
// the hot path's prepared statements on SQLite (sqlite-hot-path.ts), or held there when it says
// nothing new; and how the rest of the store sees a heartbeat held in memory and not yet written.
import type { SQL } from "bun"
import type { NodeHealth } from "../../../protocol/agent.ts"
import { batched } from "./batched.ts"
import { num, str } from "./columns.ts"
import { type Beat, type BeatResult, HEARTBEAT_COLUMNS, heartbeatValues, lastOfEach } from "./heartbeat-row.ts"
import type { Dialect } from "./migrations.ts"
import { type Held, HotPathBusy, hotPathOf, type SqliteHotPath } from "./sqlite-hot-path.ts"

type Row = Record<string, unknown>

/** The hot path's answer to "would the sweep mark anyone?"; yes when it finds the database busy. */
function anySilent(hot: SqliteHotPath, nowMs: number, sinceMs: number, missed: number): boolean {
  try {
    return hot.anySilent(nowMs, sinceMs, missed)
  } catch (error) {
    if (error instanceof HotPathBusy) return true
    throw error
  }
}

/** PostgreSQL types a VALUES list by its first row, and a parameter alone is text: say what is not. */
const PG_CASTS: Partial<Record<(typeof HEARTBEAT_COLUMNS)[number], string>> = {
  heartbeat_interval: "::real",
  last_heartbeat_ms: "::bigint",
}

/**
 * Heartbeats in one statement per batch (batched.ts): UPDATE … FROM (VALUES …), which sets each
 * node's state and reads back its desired closure and whether it was unreachable. Only a node that was
 * (rare) costs a second statement, which flips it back and tells which batch flipped it, so that with
 * several replicas exactly one emits `node.reachable`. A node twice in one batch (an agent's retry)
 * is written once, with its last heartbeat. On SQLite the batch goes through the hot path's prepared
 * statements (sqlite-hot-path.ts), and this way only when that finds the database busy.
 */
function heartbeatWriter(db: SQL, dialect: Dialect, hot: SqliteHotPath | null) {
  const slot = (n: number, column?: (typeof HEARTBEAT_COLUMNS)[number]) =>
    dialect === "postgres" ? `$${n}${(column && PG_CASTS[column]) ?? ""}` : "?"
  return batched(async (beats: Beat[]): Promise<BeatResult[]> => {
    if (hot) {
      try {
        return hot.recordHeartbeats(beats)
      } catch (error) {
        if (!(error instanceof HotPathBusy)) throw error
      }
    }
    const last = lastOfEach(beats)
    const params: unknown[] = []
    const rows: string[] = []
    for (const i of last.values()) {
      const beat = beats[i] as Beat
      const base = params.length
      params.push(beat.h.nodeId, ...heartbeatValues(beat))
      rows.push(`(${[slot(base + 1), ...HEARTBEAT_COLUMNS.map((c, k) => slot(base + 2 + k, c))].join(", ")})`)
    }
    const set = HEARTBEAT_COLUMNS.map((c, k) => `${c} = v.column${k + 2}`).join(", ")
    const updated: Row[] = await db.unsafe(
      `UPDATE nodes SET ${set} FROM (VALUES ${rows.join(", ")}) AS v WHERE nodes.id = v.column1
       RETURNING nodes.id, nodes.desired_path, nodes.unreachable`,
      params,
    )
    const byId = new Map(updated.map((r) => [String(r.id), r]))
    const lost = updated.filter((r) => num(r.unreachable) === 1).map((r) => String(r.id))
    const back = new Set<string>()
    if (lost.length > 0) {
      // The closure as of this second statement: one set since the first is the one to answer with.
      const flipped: Row[] =
        await db`UPDATE nodes SET unreachable = 0 WHERE unreachable = 1 AND id IN ${db(lost)} RETURNING id, desired_path`
      for (const r of flipped) {
        back.add(String(r.id))
        byId.set(String(r.id), r)
      }
    }
    // Written through this handle: what the hot path knows of these rows is stale.
    hot?.forget([...last.keys()])
    return beats.map((b, i) => {
      const r = byId.get(b.h.nodeId)
      return {
        wasUnreachable: last.get(b.h.nodeId) === i && back.has(b.h.nodeId),
        desiredPath: r ? str(r.desired_path) : null,
      }
    })
  })
}

/** A store's heartbeats over one database handle: written, held, and read over the rows. */
export function heartbeatStore(db: SQL, dialect: Dialect) {
  const hot = hotPathOf(db)
  const writeHeartbeat = heartbeatWriter(db, dialect, hot)
  /** Heartbeats of each node waiting in, or written by, a batch of writeHeartbeat. */
  const inBatch = new Map<string, number>()
  /**
   * A quiet heartbeat of a node whose row the hot path knows, held at once, not batched; unless an
   * earlier one of that node is still in a batch, which it must not overtake.
   */
  const holdQuiet = (hot: SqliteHotPath, h: NodeHealth, receivedAt: string) =>
    inBatch.has(h.nodeId) ? undefined : (hot.holdIfQuiet({ h, receivedAt }) ?? undefined)

  return {
    /** StorePort.holdHeartbeat: a quiet heartbeat held at once, without a promise (SQLite only). */
    hold: hot ? (h: NodeHealth, receivedAt: string) => holdQuiet(hot, h, receivedAt) : undefined,

    /** StorePort.recordHeartbeat: held if quiet, else written in the next batch. */
    async record(h: NodeHealth, receivedAt: string): Promise<BeatResult> {
      const id = h.nodeId
      const quiet = hot ? holdQuiet(hot, h, receivedAt) : undefined
      if (quiet) return quiet
      inBatch.set(id, (inBatch.get(id) ?? 0) + 1)
      try {
        return await writeHeartbeat({ h, receivedAt })
      } finally {
        const left = (inBatch.get(id) ?? 1) - 1
        if (left > 0) inBatch.set(id, left)
        else inBatch.delete(id)
      }
    },

    /**
     * Held heartbeats (sqlite-hot-path.ts) written through this handle, never moving a node's time
     * back, nor onto a node removed or enrolled again since (its epoch moved on).
     */
    async writeHeld(held: Held[]) {
      if (held.length === 0) return
      await db.begin(async (tx) => {
        for (const e of held)
          await tx`UPDATE nodes SET health = ${e.health}, last_heartbeat = ${e.at}, last_heartbeat_ms = ${e.ms}
            WHERE id = ${e.id} AND epoch = ${e.epoch} AND removed_at IS NULL
              AND (last_heartbeat_ms IS NULL OR last_heartbeat_ms < ${e.ms})`
      })
    },

    /** A node's row with its heartbeat held in memory, if newer and of the same enrolment, read over it. */
    withHeld(r: Row): Row {
      const held = hot?.heldBeat(String(r.id))
      return held && held.epoch === num(r.epoch) && held.ms > num(r.last_heartbeat_ms)
        ? { ...r, health: held.health, last_heartbeat: held.at, last_heartbeat_ms: held.ms }
        : r
    },

    /** True when the hot path knows that no node would be marked unreachable now; false means "look". */
    noneSilent: (nowMs: number, sinceMs: number, missed: number) =>
      hot !== null && !anySilent(hot, nowMs, sinceMs, missed),
  }
}
