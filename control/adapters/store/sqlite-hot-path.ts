// The two statements every agent request runs on SQLite, with statements prepared once. Bun.SQL's
// SQLite adapter prepares each query it runs, every time: for a batch of heartbeats written as one
// UPDATE … FROM (VALUES …) that meant preparing a statement of up to 6,000 parameters per batch, and
// with the credential lookup it was most of a heartbeat's cost. This is a second handle (bun:sqlite) on
// the same database file, used only for those two: the credential lookup and the heartbeat write.
//
// Both handles live in this one thread, so this handle's statements never interleave with Bun.SQL's;
// but a Bun.SQL transaction may be open across an `await` (enrolment, reports), holding the write lock.
// This handle never waits for a lock (busy_timeout 0, which would block the thread that must release
// it): a write that finds the lock taken, or a read that finds the database busy, throws `HotPathBusy`,
// and the caller takes the Bun.SQL way for that batch, which is what ran before. A read here sees
// every transaction committed before it (WAL), so a revoked credential still fails at once.
import { Database, type Statement } from "bun:sqlite"
import type { SQL } from "bun"
import type { NodeHealth } from "../../../protocol/agent.ts"
import type { NodeHealthSummary } from "../../domain/node.ts"

/** The columns a heartbeat sets, in the order of heartbeatValues (after the node id). */
export const HEARTBEAT_COLUMNS = [
  "hostname",
  "agent_version",
  "profile_path",
  "current_path",
  "booted_path",
  "agent_desired_path",
  "phase",
  "health",
  "heartbeat_interval",
  "last_heartbeat",
  "last_heartbeat_ms",
] as const

export type Beat = { h: NodeHealth; receivedAt: string }
export type BeatResult = { wasUnreachable: boolean; desiredPath: string | null }
export type CredentialRow = Record<string, unknown>

/** What a heartbeat writes, column by column (HEARTBEAT_COLUMNS). */
export function heartbeatValues({ h, receivedAt }: Beat): (string | number | null)[] {
  const health: NodeHealthSummary = { uptimeSeconds: h.uptimeSeconds, load: h.load, memory: h.memory, disk: h.disk }
  return [
    h.hostname,
    h.agentVersion,
    h.system.profile,
    h.system.current,
    h.system.booted,
    h.desired,
    h.phase,
    JSON.stringify(health),
    h.heartbeatIntervalSeconds,
    receivedAt,
    Date.parse(receivedAt),
  ]
}

/** The latest of each node's heartbeats in a batch: a node twice in one batch (a retry) is written once. */
export function lastOfEach(beats: Beat[]): Map<string, number> {
  const last = new Map<string, number>()
  for (let i = 0; i < beats.length; i++) last.set((beats[i] as Beat).h.nodeId, i)
  return last
}

export class HotPathBusy extends Error {}

/**
 * SQLite's page cache per handle, in KiB (negative: a size, not a page count), filled only as pages
 * are read. The default 2 MiB holds a tenth of 20,000 nodes' rows, so every lookup and every heartbeat
 * went to the kernel for its page; 32 MiB holds them all and their credential index.
 */
export const CACHE_KIB = -32_768

const busy = (error: unknown) => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
}

export interface SqliteHotPath {
  /** For each hash, the node whose current credential it is, or undefined. Throws HotPathBusy. */
  credentials(hashes: string[]): (CredentialRow | undefined)[]
  /** Writes a batch of heartbeats in one transaction. Throws HotPathBusy (nothing written). */
  recordHeartbeats(beats: Beat[]): BeatResult[]
  close(): void
}

function openHotPath(file: string): SqliteHotPath {
  const db = new Database(file, { readwrite: true, create: false, strict: true })
  db.run("PRAGMA busy_timeout = 0")
  db.run("PRAGMA synchronous = NORMAL")
  db.run(`PRAGMA cache_size = ${CACHE_KIB}`)
  let credential: Statement | null = null
  let write: Statement | null = null
  let flip: Statement | null = null
  // Prepared on first use: the tables exist only once the store is migrated.
  const prepare = () => {
    credential ??= db.prepare(
      "SELECT id, enrolled_at, credential_issued_at, rotation_requested_at FROM nodes WHERE credential_hash = ?",
    )
    write ??= db.prepare(
      `UPDATE nodes SET ${HEARTBEAT_COLUMNS.map((c) => `${c} = ?`).join(", ")} WHERE id = ?
       RETURNING desired_path, unreachable`,
    )
    // Only a node that was unreachable (rare) costs this second statement.
    flip ??= db.prepare("UPDATE nodes SET unreachable = 0 WHERE id = ? AND unreachable = 1 RETURNING id")
  }
  const writeBatch = db.transaction((beats: Beat[]) => {
    const last = lastOfEach(beats)
    const written = new Map<string, BeatResult>()
    for (const [id, i] of last) {
      // all(), not get(): an UPDATE … RETURNING stepped once is still running when the transaction commits.
      const row = (write?.all(...heartbeatValues(beats[i] as Beat), id) as CredentialRow[] | undefined)?.[0]
      if (!row) continue
      const back = Number(row.unreachable ?? 0) === 1 && (flip?.all(id).length ?? 0) > 0
      written.set(id, { wasUnreachable: back, desiredPath: row.desired_path == null ? null : String(row.desired_path) })
    }
    return beats.map((b, i): BeatResult => {
      const r = written.get(b.h.nodeId)
      return {
        wasUnreachable: r?.wasUnreachable === true && last.get(b.h.nodeId) === i,
        desiredPath: r?.desiredPath ?? null,
      }
    })
  })
  // One read transaction for the batch: outside one, each lookup paid for taking and releasing its
  // own WAL snapshot, about six times the cost of the lookup itself.
  const readBatch = db.transaction((hashes: string[]) =>
    hashes.map((hash) => (credential?.get(hash) as CredentialRow | null) ?? undefined),
  )
  const guarded = <T>(run: () => T): T => {
    try {
      prepare()
      return run()
    } catch (error) {
      if (busy(error)) throw new HotPathBusy("the database is busy")
      throw error
    }
  }
  return {
    credentials: (hashes) => guarded(() => readBatch(hashes)),
    // BEGIN IMMEDIATE: the write lock is taken first, so a busy database fails before anything is done.
    recordHeartbeats: (beats) => guarded(() => writeBatch.immediate(beats)),
    close: () => db.close(false),
  }
}

const HOT = new WeakMap<SQL, SqliteHotPath>()

/** Gives the Bun.SQL handle of an SQLite file its hot path (openDatabase calls it). */
export function attachHotPath(db: SQL, file: string): void {
  HOT.set(db, openHotPath(file))
}

/** The hot path of a Bun.SQL handle, or null (PostgreSQL, an in-memory SQLite). */
export function hotPathOf(db: SQL): SqliteHotPath | null {
  return HOT.get(db) ?? null
}

/** Closes a handle's hot path, if it has one. */
export function detachHotPath(db: SQL): void {
  HOT.get(db)?.close()
  HOT.delete(db)
}
