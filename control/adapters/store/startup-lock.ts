// Replicas starting at once on one PostgreSQL database take turns through what only one may do:
// migrating the schema and creating the fleet's identity (the bootstrap admin token, the first
// signing key). Without the turn, two `CREATE TABLE` racing in PostgreSQL's catalogue fail one start
// with `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`, and two first
// starts each install their own admin token. The turn is a session-level advisory lock held on one
// reserved connection for the length of `work`; PostgreSQL drops it if the process dies, so a replica
// killed mid-start never blocks the next. SQLite is one process's file and needs no turn.
import type { SQL } from "bun"
import { createLogger } from "../../../protocol/log.ts"
import type { Dialect } from "./migrations.ts"

const log = createLogger("store")

/** The advisory lock's key: a constant no other application on the database is likely to use ("chimer" in ASCII). */
const STARTUP_LOCK = String(0x6368696d6572)

export async function withStartupLock<T>(db: SQL, dialect: Dialect, work: () => Promise<T>): Promise<T> {
  if (dialect !== "postgres") return work()
  const conn = await db.reserve()
  try {
    const [got] = (await conn`SELECT pg_try_advisory_lock(${STARTUP_LOCK}::bigint) AS got`) as { got: boolean }[]
    if (!got?.got) {
      // Said, so that a start held up by another replica's (a long migration, a hung process) shows why.
      log.info("another replica is starting on this database (migrations, first-start identity); waiting for it")
      await conn`SELECT pg_advisory_lock(${STARTUP_LOCK}::bigint)`
    }
    try {
      return await work()
    } finally {
      await conn`SELECT pg_advisory_unlock(${STARTUP_LOCK}::bigint)`
    }
  } finally {
    conn.release()
  }
}
