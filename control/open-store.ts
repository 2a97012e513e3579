// The store a control plane starts on, opened once: the data directory made this user's, an SQLite
// file claimed for this process, the database opened, the checks that refuse to start on a fleet that
// was lost or left behind in SQLite, then, under the startup lock replicas on one PostgreSQL database
// share (startup-lock.ts), the schema's migrations and the fleet's identity: the admin token and the
// session signing keys. server.ts wires the rest of the control plane on what this returns.
import { createLogger } from "../protocol/log.ts"
import { ensureAdminToken } from "./adapters/admin-token.ts"
import { secureDataDir } from "./adapters/data-dir.ts"
import { openKeyring } from "./adapters/signing-keys.ts"
import { checkDatabaseNotLost, checkFleetNotLeftInSqlite, refusedSchemaTold } from "./adapters/store/database-file.ts"
import { dialectOf, openDatabase, sqlStore } from "./adapters/store/sql-store.ts"
import { claimSqliteFile } from "./adapters/store/sqlite-owner.ts"
import { withStartupLock } from "./adapters/store/startup-lock.ts"
import type { Clock } from "./domain/ports.ts"

const log = createLogger("server")

export async function openStore(o: { dataDir: string; databaseUrl: string; clock: Clock; sessionMaxSeconds: number }) {
  const secured = secureDataDir(o.dataDir)
  if (secured.tightened.length > 0)
    log.warn("the data directory was open to other users; made it this user's alone", { paths: secured.tightened })
  checkDatabaseNotLost(o.dataDir, o.databaseUrl)
  // One control plane to an SQLite file (sqlite-owner.ts); an in-memory database is this process's own.
  const sqliteFile = dialectOf(o.databaseUrl) === "sqlite" ? o.databaseUrl.replace(/^sqlite:\/\//, "") : null
  const owner = sqliteFile && sqliteFile !== ":memory:" ? claimSqliteFile(sqliteFile) : null
  const { db, dialect } = await openDatabase(o.databaseUrl).catch((error) => {
    owner?.release()
    throw error
  })
  const store = sqlStore(db, dialect)
  // Replicas starting together on one PostgreSQL database take turns here (startup-lock.ts).
  const { applied, admin, keys } = await refusedSchemaTold(db, o.databaseUrl, () =>
    withStartupLock(db, dialect, async () => {
      await checkFleetNotLeftInSqlite(db, dialect, o.dataDir)
      return {
        applied: await store.migrate(),
        admin: await ensureAdminToken(db, dialect, o.dataDir, o.clock.now().toISOString()),
        keys: await openKeyring({
          db,
          dataDir: o.dataDir,
          clock: o.clock,
          shared: dialect === "postgres",
          sessionMaxMs: o.sessionMaxSeconds * 1000,
        }),
      }
    }),
  )
  if (applied > 0) log.info("database migrated", { migrations: applied })
  /** Lets go of the SQLite file's claim, once the database is closed. */
  const release = () => owner?.release()
  return { db, dialect, store, admin, keys, release }
}
