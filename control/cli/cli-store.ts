// Where the CLI keeps what it did on nodes over SSH (exec, deploy, rollback, watch's heals): the
// deployment records, and one audit entry per target per operation. With a control plane configured
// (CHIMERA_URL, or the local admin token of a control plane on this host) they go to it through its
// API, recorded under the CLI's credential, so only the control plane ever writes its database. With
// none, the CLI keeps them in a store of its own (CHIMERA_DB, by default in CHIMERA_DATA_DIR).
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { hostname, userInfo } from "node:os"
import { join } from "node:path"
import { createAuthStore } from "../adapters/store/auth-store.ts"
import { checkDatabaseNotLost } from "../adapters/store/database-file.ts"
import { deploymentStore } from "../adapters/store/deployment-store.ts"
import { openDatabase, sqlStore } from "../adapters/store/sql-store.ts"
import { detachHotPath } from "../adapters/store/sqlite-hot-path.ts"
import { databaseUrl, dataDir } from "../config.ts"
import { createAudit } from "../domain/auth/audit.ts"
import type { DeploymentRecord } from "../domain/deployment-record.ts"
import { systemClock } from "../domain/ports.ts"
import type { UnfinishedDeployment } from "../ops/fleet-operations.ts"
import { deploymentEntries, type OperationEntry } from "../ops/operation-audit.ts"
import { apiClient, call } from "./client.ts"
import { color, field, warn } from "./output.ts"

export type { OperationEntry }

export interface CliStore {
  /** Where records go, for messages: the control plane's URL, or the local database. */
  readonly where: string
  /** Audits one operation on its targets. */
  recordOperation(operation: "exec" | "rollback" | "deploy" | "heal", entries: OperationEntry[]): Promise<void>
  /** Keeps a deploy or heal: its record, and an audit entry per target it touched. */
  saveDeployment(record: DeploymentRecord): Promise<void>
  /** Through a control plane, a deploy with no record yet is answered too (running or interrupted). */
  getDeployment(id: string): Promise<DeploymentRecord | UnfinishedDeployment | null>
  listDeployments(limit: number): Promise<DeploymentRecord[]>
  close(): Promise<void>
}

/** The exit status of a command that did what it was asked on every node but could not keep its record. */
export const NOT_RECORDED_EXIT = 3

/**
 * Keeps what a command did on nodes, once its outcome is printed: the nodes have changed whether or
 * not it is kept, so a record that cannot be kept (the control plane down) is a warning, never in the
 * outcome's place, or a user retries a rollback that was done. The exit status tells a script the
 * same: 1 still means a target failed; with none failed it is NOT_RECORDED_EXIT, not 0 (the control
 * plane's history and audit lack it) and not 1 (nothing needs doing again on the nodes).
 */
export async function keepRecord(what: string, keep: (store: CliStore) => Promise<void>, opened?: CliStore) {
  try {
    const store = opened ?? (await openCliStore())
    await keep(store).finally(() => (opened ? undefined : store.close()))
  } catch (error) {
    warn(`${color.yellow("warning")} the ${what} was not recorded: ${field((error as Error).message)}\n`)
    if (!process.exitCode) process.exitCode = NOT_RECORDED_EXIT
  }
}

/** A control plane is configured: CHIMERA_URL, or a control plane's admin token on this host. */
export function controlPlaneConfigured(env = process.env): boolean {
  return Boolean(env.CHIMERA_URL) || existsSync(join(dataDir(env), "admin.token"))
}

export async function openCliStore(env = process.env): Promise<CliStore> {
  return controlPlaneConfigured(env) ? _apiStore(env) : _localStore(env)
}

function _apiStore(env: NodeJS.ProcessEnv): CliStore {
  const { url, client } = apiClient(env)
  const api = client.api
  return {
    where: url,
    async recordOperation(operation, entries) {
      if (entries.length === 0) return
      await call(url, api.operations.records.$post({ json: { operation, entries } }))
    },
    async saveDeployment(record) {
      await call(url, api.deployments.records.$post({ json: record }))
    },
    async getDeployment(id) {
      const res = await api.deployments[":id"].$get({ param: { id } })
      if (res.status === 404) return null
      return (await call(url, Promise.resolve(res))) as DeploymentRecord | UnfinishedDeployment
    },
    async listDeployments(limit) {
      const answer = await call(url, api.deployments.$get({ query: { limit: String(limit) } }))
      return answer.deployments as DeploymentRecord[]
    },
    close: async () => {},
  }
}

async function _localStore(env: NodeJS.ProcessEnv): Promise<CliStore> {
  const url = databaseUrl(env)
  checkDatabaseNotLost(dataDir(env), url)
  const { db, dialect } = await openDatabase(url)
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
    where: url,
    recordOperation,
    async saveDeployment(record) {
      await deployments.save(record)
      await recordOperation(record.kind, deploymentEntries(record))
    },
    getDeployment: (id) => deployments.get(id),
    listDeployments: (limit) => deployments.list(limit),
    close: async () => {
      detachHotPath(db)
      await db.close()
    },
  }
}
