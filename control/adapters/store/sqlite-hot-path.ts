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
// every transaction committed before it (WAL). A node's row, once read with its credential, is kept
// and stands for it until this process changes it (known-rows.ts): a revocation, a rotation, a
// re-enrolment or a new desired closure stops it standing before it commits, so a revoked credential
// fails, and a heartbeat learns the new closure, from the commit on.
//
// A heartbeat that says nothing new (the same closures, phase, host name, version and interval as its
// node's row, the node not unreachable, and not its first since this process opened the file) is
// held in memory and written with the others every HOLD_MS: only its time and metrics wait. This
// process reads its own held heartbeats over the rows (sql-store.ts getNode, listNodes) and writes
// those the reachability sweep would count silent before it sweeps, so nothing here sees a
// difference; another process reading the file (the CLI) sees node times up to HOLD_MS old, and a
// crash loses at most that much of them, which the sweep never counts (it counts silence from the
// control plane's own start).
import { Database, type Statement } from "bun:sqlite"
import type { SQL } from "bun"
import { createLogger } from "../../../protocol/log.ts"
import {
  type Beat,
  type BeatResult,
  HEARTBEAT_COLUMNS,
  heartbeatValues,
  LAST_MS,
  lastOfEach,
  quietBeat,
  STATE,
  STATE_AT,
} from "./heartbeat-row.ts"
import type { Held, HeldBeat } from "./held-beat.ts"
import { type CredentialRow, knownRows } from "./known-rows.ts"
import { CHECKPOINT_EVERY_MS, CHECKPOINT_PAGES, CHECKPOINT_PAGES_ALONE, startCheckpointer } from "./wal-checkpointer.ts"

export type { Held }

const log = createLogger("store")

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

/**
 * How long a quiet heartbeat waits before it is written. Each heartbeat rewrote its node's whole page
 * (4 KiB to the WAL, and again to the file at the checkpoint), about 40 µs of a heartbeat's cost with
 * 20,000 nodes; written together every couple of seconds, in row order, a page takes the heartbeats
 * of all its rows at once.
 */
export const HOLD_MS = 2000
/** Held heartbeats written per transaction, so that writing them never holds the event loop long. */
const FLUSH_CHUNK = 1000

export interface SqliteHotPath {
  /** For each hash, the node whose current credential it is, or undefined. Throws HotPathBusy. */
  credentials(hashes: string[]): (CredentialRow | undefined)[]
  /** The row of the node whose credential this is, when it is known (no database read), or undefined. */
  knownCredential(hash: string): CredentialRow | undefined
  /**
   * Takes a batch of heartbeats: those that change a node's state (or bring it back from unreachable,
   * or are its first) are written in one transaction; quiet ones are held (HOLD_MS). Throws HotPathBusy
   * with nothing written or held.
   */
  recordHeartbeats(beats: Beat[]): BeatResult[]
  /**
   * Holds a heartbeat at once, with no database read, when its node's row is known and it is quiet;
   * null otherwise (it then goes the way of recordHeartbeats).
   */
  holdIfQuiet(beat: Beat): BeatResult | null
  /** A node's held heartbeat, newer than what its row says, if there is one. */
  heldBeat(nodeId: string): Held | undefined
  /**
   * Writes the held heartbeats whose rows, as written, count `missed` intervals of silence by `nowMs`
   * (the sweep calls it first); returns those it could not write because the database was busy.
   */
  writeDue(nowMs: number, missed: number): Held[]
  /** Forgets held heartbeats written another way (unless a newer one came since), and their rows. */
  settled(entries: Held[]): void
  /**
   * Whether the sweep (sql-store.ts markUnreachable, whose condition this repeats) would mark any node
   * unreachable: silent for `missed` intervals by `nowMs`, counting from `sinceMs` at the earliest.
   * Throws HotPathBusy.
   */
  anySilent(nowMs: number, sinceMs: number, missed: number): boolean
  /**
   * Drops what it knows of these nodes' rows: another handle changed them (the sweep marked them
   * unreachable, a rotated credential's first use, the Bun.SQL heartbeat fallback).
   */
  forget(nodeIds: string[]): void
  /**
   * Marks these nodes' rows as being written through the other handle: until the returned function
   * is called, their lookups read the database and keep nothing, and calling it drops what was known.
   * A revocation's commit then holds from the lookup right after it, whatever runs in between.
   */
  changing(nodeIds: string[]): () => void
  /** Writes what is held and closes the handle; returns what it could not write (the database was busy). */
  close(): Held[]
}

/**
 * Runs `write`, a write through the other handle to these nodes' rows, with their kept rows standing
 * for them neither while it runs nor after (changing): a lookup right after its commit reads what it
 * wrote. Without a hot path it only runs `write`.
 */
export async function writingNodes<T>(hot: SqliteHotPath | null, nodeIds: string[], write: () => Promise<T>) {
  const done = hot?.changing(nodeIds)
  try {
    return await write()
  } finally {
    done?.()
  }
}

function openHotPath(file: string): SqliteHotPath {
  const db = new Database(file, { readwrite: true, create: false, strict: true })
  /** When this handle opened: a row whose last heartbeat is older was written before this process ran. */
  const openedMs = Date.now()
  db.run("PRAGMA busy_timeout = 0")
  db.run("PRAGMA synchronous = NORMAL")
  db.run(`PRAGMA cache_size = ${CACHE_KIB}`)
  db.run(`PRAGMA wal_autocheckpoint = ${CHECKPOINT_PAGES}`)
  const checkpointer = startCheckpointer(file, CHECKPOINT_EVERY_MS, () => {
    if (!closed) db.run(`PRAGMA wal_autocheckpoint = ${CHECKPOINT_PAGES_ALONE}`)
  })
  let credential: Statement | null = null
  let state: Statement | null = null
  let write: Statement | null = null
  let flip: Statement | null = null
  let freshen: Statement | null = null
  let silent: Statement | null = null
  // Prepared on first use: the tables exist only once the store is migrated.
  const prepare = () => {
    // The credential's row comes with what a heartbeat compares (below), read in the same step.
    credential ??= db.prepare(
      `SELECT id, enrolled_at, credential_issued_at, rotation_requested_at, ${STATE} FROM nodes WHERE credential_hash = ?`,
    )
    state ??= db.prepare(`SELECT ${STATE} FROM nodes WHERE id = ?`)
    write ??= db.prepare(
      `UPDATE nodes SET ${HEARTBEAT_COLUMNS.map((c) => `${c} = ?`).join(", ")} WHERE id = ?
       RETURNING desired_path, unreachable`,
    )
    // Only a node that was unreachable (rare) costs this second statement.
    flip ??= db.prepare("UPDATE nodes SET unreachable = 0 WHERE id = ? AND unreachable = 1 RETURNING id")
    // Never moves a node's last heartbeat back (a full write may have gone ahead of a held one), and
    // never lands on a node removed, or enrolled again (its epoch moved on), since it was held: the
    // new machine's row says no heartbeat yet (NULL), which the time alone would let it through.
    freshen ??= db.prepare(
      `UPDATE nodes SET health = ?, last_heartbeat = ?, last_heartbeat_ms = ?
       WHERE rowid = ? AND id = ? AND epoch = ? AND removed_at IS NULL
         AND (last_heartbeat_ms IS NULL OR last_heartbeat_ms < ?)`,
    )
    silent ??= db.prepare(
      `SELECT 1 FROM nodes WHERE unreachable = 0 AND revoked_at IS NULL AND last_heartbeat_ms IS NOT NULL
         AND max(last_heartbeat_ms, ?1) + heartbeat_interval * 1000 * ?2 < ?3 LIMIT 1`,
    )
  }

  /** Heartbeats that changed nothing but their time and metrics, not yet written, by node id. */
  const held = new Map<string, HeldBeat>()
  /**
   * Each node's row as last read with its credential (known-rows.ts). It follows this handle's writes:
   * a full heartbeat write sets what it wrote (refresh), written held heartbeats move its
   * `last_heartbeat_ms`, which stays the row's as written (the sweep's view).
   */
  const known = knownRows()
  const rowOf = (id: string): CredentialRow | null => known.row(id) ?? (state?.get(id) as CredentialRow | null) ?? null

  type Values = ReturnType<typeof heartbeatValues>
  type Plan = { full: [string, Values][]; quiet: HeldBeat[]; desired: Map<string, string | null> }
  /** The heartbeat held in place of a write (quietBeat), or null. */
  const quietOf = (id: string, beat: Beat, row: CredentialRow | null | undefined) =>
    quietBeat(beat, row, held.get(id), openedMs)
  const desiredOf = (row: CredentialRow) => (row.desired_path == null ? null : String(row.desired_path))
  /** What each node's row says now (`last`: each node's latest beat): which heartbeats are quiet (quietOf). */
  const planOf = (beats: Beat[], last: Map<string, number>): Plan => {
    const plan: Plan = { full: [], quiet: [], desired: new Map() }
    for (const [id, i] of last) {
      const beat = beats[i] as Beat
      const row = rowOf(id)
      const quiet = quietOf(id, beat, row)
      if (!quiet || !row) {
        plan.full.push([id, heartbeatValues(beat)])
        continue
      }
      plan.desired.set(id, desiredOf(row))
      plan.quiet.push(quiet)
    }
    return plan
  }
  // Several rows in one read transaction (one WAL snapshot); a single one needs none of its own.
  const readPlan = db.transaction(planOf)
  const writeFull = db.transaction((which: [string, Values][]) => {
    const written = new Map<string, BeatResult>()
    for (const [id, values] of which) {
      // all(), not get(): an UPDATE … RETURNING stepped once is still running when the transaction commits.
      const row = (write?.all(...values, id) as CredentialRow[] | undefined)?.[0]
      if (!row) continue
      const back = Number(row.unreachable ?? 0) === 1 && (flip?.all(id).length ?? 0) > 0
      written.set(id, { wasUnreachable: back, desiredPath: row.desired_path == null ? null : String(row.desired_path) })
    }
    return written
  })
  /** Writes held heartbeats; returns those it wrote (not one whose row a full write moved past it). */
  const writeHeld = db.transaction((entries: Held[]) =>
    entries.filter((e) => freshen?.run(e.health, e.at, e.ms, e.rowId, e.id, e.epoch, e.ms).changes === 1),
  )
  /** Once writeHeld's transaction has committed: the known rows (above) then say what their rows say. */
  const wrote = (entries: Held[]) => {
    for (const e of entries) {
      const row = known.row(e.id)
      if (row && Number(row.last_heartbeat_ms ?? 0) < e.ms) row.last_heartbeat_ms = e.ms
    }
  }
  /** A known row (above) after its node's full write committed: what the write set, and reachable. */
  const refresh = (id: string, values: Values, desiredPath: string | null) => {
    const row = known.row(id)
    if (!row) return
    for (const [c, k] of STATE_AT) row[c] = values[k]
    row.last_heartbeat_ms = values[LAST_MS]
    row.desired_path = desiredPath
    row.unreachable = 0
  }
  /** Forgets held heartbeats once written (unless a newer one came since). */
  const settle = (entries: Held[]) => {
    for (const e of entries) if (held.get(e.id) === e) held.delete(e.id)
  }
  /** In the order of their rows, so that a page is written once for all of its rows. */
  const inRowOrder = (entries: Held[]) => entries.sort((a, b) => a.rowId - b.rowId)

  const recordHeartbeats = (beats: Beat[]): BeatResult[] => {
    const last = lastOfEach(beats)
    const plan = beats.length === 1 ? planOf(beats, last) : readPlan(beats, last)
    // BEGIN IMMEDIATE: the write lock is taken first, so a busy database fails before anything is done.
    const written = plan.full.length > 0 ? writeFull.immediate(plan.full) : new Map<string, BeatResult>()
    for (const [id, values] of plan.full) {
      held.delete(id)
      const r = written.get(id)
      if (r) refresh(id, values, r.desiredPath)
      else known.drop(id)
    }
    for (const e of plan.quiet) held.set(e.id, e)
    return beats.map((b, i): BeatResult => {
      const id = b.h.nodeId
      const r = written.get(id)
      return {
        wasUnreachable: r?.wasUnreachable === true && last.get(id) === i,
        desiredPath: r ? r.desiredPath : (plan.desired.get(id) ?? null),
      }
    })
  }

  /** Writes held heartbeats in the order of their rows, a chunk per transaction, yielding between chunks. */
  let flushing: Promise<void> | null = null
  let closed = false
  const flush = async () => {
    const entries = inRowOrder([...held.values()])
    for (let c = 0; c < entries.length && !closed; c += FLUSH_CHUNK) {
      const chunk = entries.slice(c, c + FLUSH_CHUNK)
      try {
        prepare()
        wrote(writeHeld.immediate(chunk))
      } catch (error) {
        if (busy(error)) return // kept; the next turn of the timer tries again
        throw error
      }
      settle(chunk)
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  const timer = setInterval(() => {
    known.expire()
    if (flushing || held.size === 0) return
    flushing = flush()
      .catch((error) => log.error("writing held heartbeats failed; they are kept and tried again", { error }))
      .finally(() => {
        flushing = null
      })
  }, HOLD_MS)
  timer.unref()

  // One read transaction for a batch: outside one, each lookup paid for taking and releasing its own
  // WAL snapshot, about six times the cost of the lookup itself. A lookup alone takes its snapshot once
  // either way, and BEGIN and COMMIT would only add two statements.
  const lookup = (hash: string): CredentialRow | undefined => {
    const k = known.byCredential(hash)
    if (k) return k
    const row = (credential?.get(hash) as CredentialRow | null) ?? undefined
    if (row) known.keep(hash, row)
    return row
  }
  const readBatch = db.transaction((hashes: string[]) => hashes.map(lookup))
  const guarded = <T>(run: () => T): T => {
    if (closed) throw new Error("the database is closed")
    try {
      prepare()
      return run()
    } catch (error) {
      if (busy(error)) throw new HotPathBusy("the database is busy")
      throw error
    }
  }
  return {
    knownCredential: known.byCredential,
    credentials: (hashes) => guarded(() => (hashes.length === 1 ? [lookup(hashes[0] as string)] : readBatch(hashes))),
    recordHeartbeats: (beats) => guarded(() => recordHeartbeats(beats)),
    holdIfQuiet(beat) {
      const id = beat.h.nodeId
      const row = closed ? undefined : known.row(id)
      const e = row ? quietOf(id, beat, row) : null
      if (!e || !row) return null
      held.set(id, e)
      return { wasUnreachable: false, desiredPath: desiredOf(row) }
    },
    heldBeat: (nodeId) => held.get(nodeId),
    writeDue(nowMs, missed) {
      const due = [...held.values()].filter((e) => e.writtenMs + e.intervalSeconds * 1000 * missed < nowMs)
      if (due.length === 0) return []
      try {
        guarded(() => wrote(writeHeld.immediate(inRowOrder(due))))
      } catch (error) {
        if (error instanceof HotPathBusy) return due
        throw error
      }
      settle(due)
      return []
    },
    settled(entries) {
      settle(entries)
      for (const e of entries) known.drop(e.id)
    },
    anySilent: (nowMs, sinceMs, missed) => guarded(() => silent?.get(sinceMs, missed, nowMs) != null),
    forget(nodeIds) {
      for (const id of nodeIds) known.drop(id)
    },
    changing: known.changing,
    close() {
      clearInterval(timer)
      checkpointer.stop()
      let left = [...held.values()]
      try {
        if (left.length > 0) guarded(() => writeHeld.immediate(left))
        left = []
      } catch (error) {
        if (!(error instanceof HotPathBusy)) throw error
      } finally {
        closed = true
        held.clear()
        known.clear()
        db.close(false)
      }
      return left
    },
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

/** Closes a handle's hot path, if it has one; returns the held heartbeats it could not write. */
export function detachHotPath(db: SQL): Held[] {
  const left = HOT.get(db)?.close() ?? []
  HOT.delete(db)
  return left
}
