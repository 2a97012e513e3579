// One control plane to an SQLite file. The control plane keeps what it has read of each node's row
// and follows its own writes (sqlite-hot-path.ts), holds heartbeats in memory, and voids delivery
// leases it finds at start as left by a killed predecessor: a second control plane on the same file
// would see none of the first's writes in time (a credential it revoked would be taken for minutes)
// and would void the first's live leases. So a control plane holds an exclusive lock for as long as it
// runs, on a small SQLite file beside the database (FILE-owner), and a second one is refused at start.
// The lock is the operating system's, taken through SQLite: it goes with the process, however that
// ends. The CLI's own store takes none: it writes no node rows, and must run beside a control plane.
import { Database } from "bun:sqlite"
import { closeSync, constants, mkdirSync, openSync } from "node:fs"
import { dirname } from "node:path"
import { StateError } from "../data-dir.ts"

export interface SqliteOwner {
  release(): void
}

export function claimSqliteFile(file: string): SqliteOwner {
  const path = `${file}-owner`
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  // This user's alone, like the database beside it (SQLite gives its journal the same mode).
  closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600))
  const lock = new Database(path, { create: false, readwrite: true })
  try {
    lock.run("PRAGMA busy_timeout = 0")
    // In exclusive locking mode the lock a write transaction takes is kept until the handle closes.
    lock.run("PRAGMA locking_mode = EXCLUSIVE")
    lock.run("BEGIN EXCLUSIVE")
    lock.run("CREATE TABLE IF NOT EXISTS owner (pid INTEGER)")
    lock.run("DELETE FROM owner")
    lock.run("INSERT INTO owner VALUES (?)", [process.pid])
    lock.run("COMMIT")
  } catch (error) {
    lock.close(false)
    const code = String((error as { code?: unknown }).code ?? "")
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
      throw new StateError(
        `another control plane is running on ${file} (it holds ${path}): SQLite takes one; stop that one first, or run replicas on PostgreSQL (CHIMERA_DB=postgres://…)`,
      )
    throw error
  }
  let released = false
  return {
    release() {
      if (released) return
      released = true
      lock.close(false)
    },
  }
}
