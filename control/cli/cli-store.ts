// The CLI's view of the store, opened once per command on CHIMERA_DB (the control plane's database,
// when the CLI runs beside it or against a shared PostgreSQL): deployment records, and the audit log
// for what the CLI runs on nodes over SSH (exec, deploy, rollback, watch's heals), which never passes
// through the API. Audit entries are one per target per operation, with the operating system user
// who ran it, the command and its result.
import { randomUUID } from "node:crypto"
import { hostname, userInfo } from "node:os"
import { createAuthStore } from "../adapters/store/auth-store.ts"
import { type DeploymentStore, deploymentStore } from "../adapters/store/deployment-store.ts"
import { openDatabase, sqlStore } from "../adapters/store/sql-store.ts"
import { databaseUrl } from "../config.ts"
import { createAudit } from "../domain/auth/audit.ts"
import type { DeploymentRecord } from "../domain/deploy.ts"
import { systemClock } from "../domain/ports.ts"

export interface OperationEntry {
  target: string
  command: string
  ok: boolean
  detail?: Record<string, unknown>
}

export interface CliStore {
  deployments: DeploymentStore
  /** Audits one operation on its targets. */
  recordOperation(operation: string, entries: OperationEntry[]): Promise<void>
  /** Keeps a deploy or heal: its record, and an audit entry per target it touched. */
  saveDeployment(record: DeploymentRecord): Promise<void>
  close(): Promise<void>
}

export async function openCliStore(env = process.env): Promise<CliStore> {
  const { db, dialect } = await openDatabase(databaseUrl(env))
  await sqlStore(db, dialect).migrate()
  const audit = createAudit({ store: createAuthStore(db, dialect), clock: systemClock })
  const deployments = deploymentStore(db)
  const actor = `cli:${userInfo().username}`
  const source = `cli@${hostname()}`

  const recordOperation = async (operation: string, entries: OperationEntry[]) => {
    // One request id per CLI operation ties its targets' entries together.
    const requestId = randomUUID()
    for (const e of entries)
      await audit.recordCommand({
        requestId,
        actor,
        role: null,
        source,
        nodeId: e.target,
        command: e.command,
        status: e.ok ? 200 : 500,
        detail: { operation, ...e.detail },
      })
  }

  return {
    deployments,
    recordOperation,
    async saveDeployment(record) {
      await deployments.save(record)
      // Up-to-date targets were only read; planned ones were not touched.
      const touched = record.targets.filter((t) => t.status !== "up-to-date" && t.status !== "planned")
      await recordOperation(
        record.kind,
        touched.map((t) => ({
          target: t.target,
          command: `${record.kind} ${record.closure}${record.command ? ` && ${record.command}` : ""}`,
          ok: t.status === "deployed",
          detail: { deployment: record.id, status: t.status, error: t.error },
        })),
      )
    },
    close: () => db.close(),
  }
}
