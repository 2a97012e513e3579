// Which control plane ran a deploy, and whether it still runs. A replica's name is
// `chimera/HOST/PID:START` (process-instance.ts): on its own host the process itself is checked; on
// PostgreSQL every replica's connections carry its name as `application_name`, so a replica on
// another host is alive while PostgreSQL lists a connection of it (its event listener holds one for
// as long as it runs). A deploy whose replica is gone never finishes: GET /api/deployments/{id}
// answers it `interrupted` instead of `running` for ever.
import { hostname } from "node:os"
import type { SQL } from "bun"
import { currentProcessInstance, instanceTag } from "./process-instance.ts"
import type { Dialect } from "./store/migrations.ts"

/** PostgreSQL keeps 63 bytes of an application_name. */
const HOST_CHARS = 24

const thisHost = () =>
  hostname()
    .replace(/[^A-Za-z0-9.-]/g, "-")
    .slice(0, HOST_CHARS)

/** This process's replica name (and its PostgreSQL application_name). */
export function replicaName(): string {
  return `chimera/${thisHost()}/${instanceTag()}`
}

export type ReplicaAlive = (name: string) => Promise<boolean | null>

/**
 * Whether the replica named `name` runs: true or false when that can be told, null when it cannot
 * (another host on SQLite, or a name not made by replicaName).
 */
export function replicaLiveness(db: SQL, dialect: Dialect): ReplicaAlive {
  const instance = currentProcessInstance()
  return async (name) => {
    const m = /^chimera\/([^/]*)\/(\d+:(?:\d+|\?))$/.exec(name)
    if (!m) return null
    if (m[1] === thisHost() && instance.isRunning(m[2] as string)) return true
    if (dialect !== "postgres") return m[1] === thisHost() ? false : null
    const rows = (await db`SELECT 1 FROM pg_stat_activity WHERE application_name = ${name} LIMIT 1`) as unknown[]
    return rows.length > 0
  }
}
