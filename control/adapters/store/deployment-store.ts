// Deployment records (deploy, heal), kept whole as JSON beside a few columns to list and filter by.
// Built over an open handle (control/cli/cli-store.ts opens it), on the same database as the control
// plane (CHIMERA_DB), which SQLite in WAL mode and PostgreSQL both allow from several processes.
import type { SQL } from "bun"
import type { DeploymentRecord } from "../../domain/deploy.ts"

export interface DeploymentStore {
  save(record: DeploymentRecord): Promise<void>
  get(id: string): Promise<DeploymentRecord | null>
  list(limit: number): Promise<DeploymentRecord[]>
  /** Those finished after `at` (ISO), oldest first: what the metrics have not counted yet. */
  finishedAfter(at: string, limit: number): Promise<DeploymentRecord[]>
}

type Row = { record: string }

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
  }
}
