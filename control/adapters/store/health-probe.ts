// Whether the store can be read and written right now: a cheap read of the newest event and a write
// to a one-row table (health_probe). On SQLite the probe opens its own connection each time, because
// the server's long-lived one reads from its page cache and would call a file overwritten with
// garbage healthy; a fresh connection reads the file's header and pages as a restart would. On
// PostgreSQL the shared pool is used: the server owns its files, and a stopped or unreachable server
// fails the query. The caller (api/health.ts) bounds how often and how long this runs.
import { SQL } from "bun"
import type { Dialect } from "./migrations.ts"

/** Resolves with nothing, or rejects with the store's own error. */
export type StoreProbe = () => Promise<void>

export function storeProbe(url: string, db: SQL, dialect: Dialect): StoreProbe {
  const check = async (sql: SQL) => {
    await sql`SELECT id FROM events ORDER BY id DESC LIMIT 1`
    const at = new Date().toISOString()
    await sql`
      INSERT INTO health_probe (id, checked_at) VALUES (1, ${at})
      ON CONFLICT (id) DO UPDATE SET checked_at = ${at}`
  }
  if (dialect === "postgres") return () => check(db)
  return async () => {
    const fresh = new SQL(url)
    try {
      await fresh`PRAGMA busy_timeout = 1000`
      await check(fresh)
    } finally {
      await fresh.close()
    }
  }
}
