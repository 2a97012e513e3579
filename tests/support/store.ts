// A migrated SQLite store in a temp dir of its own, for tests of the domain over a real database.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { openDatabase, sqlStore } from "../../control/adapters/store/sql-store.ts"

export async function openTestStore(name: string) {
  const dir = await mkdtemp(join(tmpdir(), `chimera-${name}-`))
  const { db, dialect } = await openDatabase(`sqlite://${join(dir, "chimera.db")}`)
  const store = sqlStore(db, dialect)
  await store.migrate()
  return {
    dir,
    db,
    dialect,
    store,
    async close() {
      await store.close() // the hot path and its checkpointer too, not only the Bun.SQL handle
      await rm(dir, { recursive: true, force: true })
    },
  }
}
