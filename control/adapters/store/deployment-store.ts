// Deployment records (deploy, heal), kept whole as JSON beside a few columns to list and filter by.
// Built over an open handle (control/cli/cli-store.ts opens it), on the same database as the control
// plane (CHIMERA_DB), which SQLite in WAL mode and PostgreSQL both allow from several processes.
// A record is saved when its deploy ends; until then a deploy another replica runs is known here only
// by its events (`deployment.started`, `.progress`), which `runningElsewhere` reads.
import type { SQL } from "bun"
import type { DeploymentRecord } from "../../domain/deploy.ts"

export interface DeploymentStore {
  save(record: DeploymentRecord): Promise<void>
  get(id: string): Promise<DeploymentRecord | null>
  list(limit: number): Promise<DeploymentRecord[]>
  /** Those finished after `at` (ISO), oldest first: what the metrics have not counted yet. */
  finishedAfter(at: string, limit: number): Promise<DeploymentRecord[]>
  /** A deploy started (by any replica) and not finished, from its events; null when there is none. */
  runningElsewhere(id: string): Promise<RunningDeployment | null>
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

export function deploymentStore(db: SQL): DeploymentStore {
  return {
    async save(r) {
      const json = JSON.stringify(r)
      await db`
        INSERT INTO deployments (id, kind, created_at, finished_at, status, closure, record)
        VALUES (${r.id}, ${r.kind}, ${r.createdAt}, ${r.finishedAt}, ${r.status}, ${r.closure}, ${json})
        ON CONFLICT (id) DO UPDATE SET finished_at = ${r.finishedAt}, status = ${r.status}, record = ${json}`
    },
    async get(id) {
      const rows: Row[] = await db`SELECT record FROM deployments WHERE id = ${id}`
      return rows[0] ? (JSON.parse(rows[0].record) as DeploymentRecord) : null
    },
    async list(limit) {
      const rows: Row[] = await db`SELECT record FROM deployments ORDER BY created_at DESC LIMIT ${limit}`
      return rows.map((r) => JSON.parse(r.record) as DeploymentRecord)
    },
    async finishedAfter(at, limit) {
      const rows: Row[] =
        await db`SELECT record FROM deployments WHERE finished_at > ${at} ORDER BY finished_at LIMIT ${limit}`
      return rows.map((r) => JSON.parse(r.record) as DeploymentRecord)
    },
    async runningElsewhere(id) {
      const m = DEPLOYMENT_ID.exec(id)
      if (!m) return null
      // Its events arrive from its start on (the id holds that second), and name it in their data.
      const since = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}`
      const rows = (await db`
        SELECT type, at, data FROM events
        WHERE received_at >= ${since} AND type IN ('deployment.started', 'deployment.progress', 'deployment.finished')
          AND data LIKE ${`%"id":"${id}"%`}
        ORDER BY id`) as { type: string; at: string; data: string }[]
      const started = rows.find((r) => r.type === "deployment.started")
      if (!started || rows.some((r) => r.type === "deployment.finished")) return null
      const data = JSON.parse(started.data) as { targets?: unknown; replica?: unknown }
      const progress: Record<string, string> = {}
      for (const r of rows) {
        if (r.type !== "deployment.progress") continue
        const p = JSON.parse(r.data) as { target?: unknown; phase?: unknown; message?: unknown }
        if (typeof p.target === "string") progress[p.target] = `${String(p.phase)}: ${String(p.message)}`
      }
      const targets = Array.isArray(data.targets) ? data.targets.filter((t): t is string => typeof t === "string") : []
      const replica = typeof data.replica === "string" ? data.replica : null
      return { id, status: "running", createdAt: started.at, targets, progress, replica }
    },
  }
}
