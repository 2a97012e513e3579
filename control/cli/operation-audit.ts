// Commands the CLI runs on nodes over SSH (exec, deploy, rollback, watch's heals) never pass through
// the API, so the CLI writes them to the same append-only audit log itself: one entry per target per
// operation, with the operating system user who ran it, the command and its result. The database is
// CHIMERA_DB (the control plane's, when the CLI runs beside it or against a shared PostgreSQL).
import { randomUUID } from "node:crypto"
import { hostname, userInfo } from "node:os"
import { createAuthStore } from "../adapters/store/auth-store.ts"
import { openDatabase, sqlStore } from "../adapters/store/sql-store.ts"
import { databaseUrl } from "../config.ts"
import { createAudit } from "../domain/auth/audit.ts"
import { systemClock } from "../domain/ports.ts"

export interface OperationEntry {
  target: string
  command: string
  ok: boolean
  detail?: Record<string, unknown>
}

export interface OperationAudit {
  record(operation: string, entries: OperationEntry[]): Promise<void>
  close(): Promise<void>
}

export async function openOperationAudit(env = process.env): Promise<OperationAudit> {
  const { db, dialect } = await openDatabase(databaseUrl(env))
  await sqlStore(db, dialect).migrate()
  const audit = createAudit({ store: createAuthStore(db, dialect), clock: systemClock })
  const actor = `cli:${userInfo().username}`
  const source = `cli@${hostname()}`
  return {
    async record(operation, entries) {
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
    },
    close: () => db.close(),
  }
}
