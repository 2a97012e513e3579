// Deployment records (deploy, heal), kept whole as JSON beside a few columns to list and filter by.
// Built over an open handle (control/cli/cli-store.ts opens it), on the same database as the control
// plane (CHIMERA_DB), which SQLite in WAL mode and PostgreSQL both allow from several processes.
// A record is saved when its deploy ends; until then a deploy another replica runs is known here only
// by its events (`deployment.started`, `.progress`), which `runningElsewhere` reads.
// Records are written two ways. The control plane saves the deploys it ran (and a CLI without a
// control plane its own): those are `save`d, and `recorded_by` stays null. A caller reports what it
// ran elsewhere through `record`, under its principal; ids are visible to every viewer, so such an id
// may be written again only by the principal that first wrote it, and never over a deploy the control
// plane ran (a null `recorded_by`, or a `deployment.started` event for the id, for one that has no
// record yet or ended without one).
import type { SQL } from "bun"
import type { DeploymentRecord } from "../../domain/deployment-record.ts"
import { fittingRows } from "./page-bytes.ts"

/** Why `record` refused: the id is a deploy the control plane ran, or another principal's record. */
export type RecordRefusal = "control-plane" | "another-principal"

export interface DeploymentStore {
  /** The control plane's own record of a deploy it ran; it replaces any record of that id. */
  save(record: DeploymentRecord): Promise<void>
  /** A record a caller reports under `by` (its principal's subject); null once kept, else why not. */
  record(record: DeploymentRecord, by: string): Promise<RecordRefusal | null>
  get(id: string): Promise<DeploymentRecord | null>
  /** The record and the principal that reported it (null for a deploy the control plane ran), in one read. */
  reported(id: string): Promise<{ record: DeploymentRecord; reportedBy: string | null } | null>
  /** The newest first: at most `limit`, and no more than LIST_BYTES of them (at least one). */
  list(limit: number): Promise<DeploymentRecord[]>
  /** Those finished after `at` (ISO), oldest first: what the metrics have not counted yet. */
  finishedAfter(at: string, limit: number): Promise<DeploymentRecord[]>
  /** A deploy started (by any replica) and not finished, from its events; null when there is none. */
  runningElsewhere(id: string): Promise<RunningDeployment | null>
  /** Forgets the records of deploys finished before `before` (ISO); returns how many. */
  prune(before: string): Promise<number>
}

export interface RunningDeployment {
  id: string
  status: "running"
  createdAt: string
  targets: string[]
  /** Each target's last progress, `phase: message`. */
  progress: Record<string, string>
  /** The replica that runs it (replica-liveness.ts), when its start said so. */
  replica: string | null
}

type Row = { record: string }
/** Deployment ids as deploymentId makes them (`YYYYMMDDHHMMSS-` and 8 hex digits). */
const DEPLOYMENT_ID = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})-[0-9a-f]{8}$/

/**
 * The most a page of the list holds, in stored bytes (always at least one record). A record keeps
 * every target's log: up to 1 MiB as a CLI reports it, more for a deploy of the control plane's to
 * thousands of nodes. A viewer's `?limit=1000` (the dashboard asks for 100) once answered 200 MB from
 * 250 reported records, 1.5 GB at its peak and the event loop held 2 s; a thousand would have been 800 MB.
 */
const LIST_BYTES = 8 * 1024 * 1024

type EventRow = { id: number; type: string; at: string; data: string }
type DeployEventType = "deployment.started" | "deployment.progress" | "deployment.finished"

/**
 * The `deployment.*` events of `types` naming a deploy of the control plane's, oldest first; none for
 * other ids. Each type is read on its own, and only from the deploy's start on: a deploy has one
 * `started` and one `finished` but a `progress` per target and step (120,000 for one deploy to 20,000
 * nodes), and an id anyone may name, a made-up one included, read every one of them since the time
 * the id holds: 0.8 s of the event loop per request with a million in the log.
 */
async function _deployEvents(db: SQL, id: string, type: DeployEventType, afterId = 0): Promise<EventRow[]> {
  const m = DEPLOYMENT_ID.exec(id)
  if (!m) return []
  // Its events arrive from its start on (the id holds that second), and name it in their data.
  const since = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}`
  return (await db`
    SELECT id, type, at, data FROM events
    WHERE type = ${type} AND id > ${afterId} AND received_at >= ${since} AND data LIKE ${`%"id":"${id}"%`}
    ORDER BY id`) as EventRow[]
}

/** A deployment's stored record and who reported it. */
async function _row(db: SQL, id: string): Promise<(Row & { recorded_by: string | null }) | undefined> {
  const rows: (Row & { recorded_by: string | null })[] =
    await db`SELECT record, recorded_by FROM deployments WHERE id = ${id}`
  return rows[0]
}

export function deploymentStore(db: SQL): DeploymentStore {
  return {
    async save(r) {
      const json = JSON.stringify(r)
      await db`
        INSERT INTO deployments (id, kind, created_at, finished_at, status, closure, record)
        VALUES (${r.id}, ${r.kind}, ${r.createdAt}, ${r.finishedAt}, ${r.status}, ${r.closure}, ${json})
        ON CONFLICT (id) DO UPDATE SET finished_at = ${r.finishedAt}, status = ${r.status}, record = ${json}, recorded_by = NULL`
    },
    async record(r, by) {
      if ((await _deployEvents(db, r.id, "deployment.started")).length > 0) return "control-plane"
      const json = JSON.stringify(r)
      // One statement decides, so two writers racing for a new id cannot both win.
      const kept = await db`
        INSERT INTO deployments (id, kind, created_at, finished_at, status, closure, record, recorded_by)
        VALUES (${r.id}, ${r.kind}, ${r.createdAt}, ${r.finishedAt}, ${r.status}, ${r.closure}, ${json}, ${by})
        ON CONFLICT (id) DO UPDATE SET finished_at = ${r.finishedAt}, status = ${r.status}, record = ${json}
        WHERE deployments.recorded_by = ${by}
        RETURNING id`
      if (kept.length > 0) return null
      return ((await _row(db, r.id))?.recorded_by ?? null) === null ? "control-plane" : "another-principal"
    },
    async get(id) {
      const rows: Row[] = await db`SELECT record FROM deployments WHERE id = ${id}`
      return rows[0] ? (JSON.parse(rows[0].record) as DeploymentRecord) : null
    },
    async reported(id) {
      const row = await _row(db, id)
      return row ? { record: JSON.parse(row.record) as DeploymentRecord, reportedBy: row.recorded_by } : null
    },
    async list(limit) {
      // Sizes first (octet_length reads no record), then only the records that fit the page, by id: a
      // record saved in between cannot take one's place.
      const sizes: { id: string; size: number }[] =
        await db`SELECT id, octet_length(record) AS size FROM deployments ORDER BY created_at DESC, id DESC LIMIT ${limit}`
      const count = fittingRows(sizes, LIST_BYTES)
      if (count === 0) return []
      const ids = sizes.slice(0, count).map((r) => r.id)
      const rows: Row[] =
        await db`SELECT record FROM deployments WHERE id IN ${db(ids)} ORDER BY created_at DESC, id DESC`
      return rows.map((r) => JSON.parse(r.record) as DeploymentRecord)
    },
    async prune(before) {
      const rows: unknown[] = await db`DELETE FROM deployments WHERE finished_at < ${before} RETURNING id`
      return rows.length
    },
    async finishedAfter(at, limit) {
      const rows: Row[] =
        await db`SELECT record FROM deployments WHERE finished_at > ${at} ORDER BY finished_at LIMIT ${limit}`
      return rows.map((r) => JSON.parse(r.record) as DeploymentRecord)
    },
    async runningElsewhere(id) {
      // A deploy that never started, or has finished, is known from its one event of each kind; only a
      // running one (or one whose control plane stopped without a word) has its progress read.
      const [started] = await _deployEvents(db, id, "deployment.started")
      if (!started || (await _deployEvents(db, id, "deployment.finished", started.id)).length > 0) return null
      const data = JSON.parse(started.data) as { targets?: unknown; replica?: unknown }
      const progress: Record<string, string> = {}
      for (const r of await _deployEvents(db, id, "deployment.progress", started.id)) {
        const p = JSON.parse(r.data) as { target?: unknown; phase?: unknown; message?: unknown }
        if (typeof p.target === "string") progress[p.target] = `${String(p.phase)}: ${String(p.message)}`
      }
      const targets = Array.isArray(data.targets) ? data.targets.filter((t): t is string => typeof t === "string") : []
      const replica = typeof data.replica === "string" ? data.replica : null
      return { id, status: "running", createdAt: started.at, targets, progress, replica }
    },
  }
}
