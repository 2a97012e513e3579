// Deployment records (deploy, heal), kept whole as JSON beside a few columns to list and filter by.
// Opened by the CLI on the same database as the control plane (CHIMERA_DB), which SQLite in WAL mode
// and PostgreSQL both allow from several processes.
import { SQL } from "bun"
import type { DeploymentRecord } from "../../domain/deploy.ts"
import { createSqlStore, dialectOf } from "./sql-store.ts"

export interface DeploymentStore {
  save(record: DeploymentRecord): Promise<void>
  get(id: string): Promise<DeploymentRecord | null>
  list(limit: number): Promise<DeploymentRecord[]>
  close(): Promise<void>
}

type Row = { record: string }

export async function openDeploymentStore(url: string): Promise<DeploymentStore> {
  // Migrations (and the directory) come from the main store; its connection is not needed after.
  const main = await createSqlStore(url)
  await main.migrate()
  await main.close()
  const db = new SQL(url)
  if (dialectOf(url) === "sqlite") await db`PRAGMA busy_timeout = 5000`
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
    async close() {
      await db.close()
    },
  }
}
