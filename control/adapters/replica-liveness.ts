// Which control plane ran a deploy, and whether it still runs. A replica's name is
// `chimera/HOST/PID:START` (process-instance.ts): on its own host the process itself is checked; on
// PostgreSQL every replica's connections carry its name as `application_name`, so a replica on
// another host runs while PostgreSQL lists a connection of it (its event listener holds one for as
// long as it runs). A connection can drop for a moment (a failover, a restart of PostgreSQL) while
// the replica goes on, so a replica elsewhere is gone only once this process has seen it absent
// for GONE_AFTER_MS without a break, timed on this process's own clock.
import { createHash } from "node:crypto"
import { hostname } from "node:os"
import type { SQL } from "bun"
import { createLogger } from "../../protocol/log.ts"
import { currentProcessInstance, instanceTag } from "./process-instance.ts"
import type { Dialect } from "./store/migrations.ts"

const log = createLogger("replicas")

/** PostgreSQL keeps 63 bytes of an application_name; a longer host name keeps its start and a hash. */
const HOST_CHARS = 24

/** How long a replica elsewhere must be seen absent, without a break, to count as gone. */
export const GONE_AFTER_MS = 60_000

function thisHost(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, "-")
  if (host.length <= HOST_CHARS) return host
  return `${host.slice(0, HOST_CHARS - 9)}~${createHash("sha256").update(host).digest("hex").slice(0, 8)}`
}

/** This process's replica name (and its PostgreSQL application_name). */
export function replicaName(): string {
  return `chimera/${thisHost()}/${instanceTag()}`
}

/** True or false when it can be told; null when it cannot (yet). */
export type ReplicaAlive = (name: string) => Promise<boolean | null>

export function replicaLiveness(db: SQL, dialect: Dialect, goneAfterMs = GONE_AFTER_MS): ReplicaAlive {
  const instance = currentProcessInstance()
  const absentSince = new Map<string, number>()
  return async (name) => {
    const m = /^chimera\/([^/]*)\/(\d+:(?:\d+|\?))$/.exec(name)
    if (!m) return null
    // On its own host a process that is gone is gone (on SQLite that is every replica there is).
    if (m[1] === thisHost() && instance.isRunning(m[2] as string)) return true
    if (dialect !== "postgres") return m[1] === thisHost() ? false : null
    let listed: boolean
    try {
      const rows = (await db`
        SELECT 1 FROM pg_stat_activity WHERE application_name = ${name} AND datname = current_database() LIMIT 1`) as unknown[]
      listed = rows.length > 0
    } catch (error) {
      log.warn("cannot tell whether a replica runs", { replica: name, error })
      return null
    }
    if (listed) {
      absentSince.delete(name)
      return true
    }
    const now = performance.now()
    const since = absentSince.get(name) ?? now
    absentSince.set(name, since)
    return now - since >= goneAfterMs ? false : null
  }
}
