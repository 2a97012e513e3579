// Whether the store Chimera is about to open is a Chimera database, a fresh install, or neither.
// SQLite takes an empty file for an empty database, and migrating it would make a fresh install of a
// database someone emptied or truncated (every user, node and audit row gone, without a word). So a
// fresh install is only a missing file: an existing file must be a whole SQLite database, and one with
// tables must hold Chimera's, else nothing opens it and the message says what to do. A new database
// is made complete under a temporary name (0600, in WAL mode; SQLite gives its -wal and -shm files
// the database's mode, whatever the process's umask) and linked into place, so no process ever finds
// an empty file at the database's path, even two starting at once. On PostgreSQL: a start that would
// leave a fleet behind in the data dir's SQLite file, and a role that may not make Chimera's tables, are
// refused in words that say what to do.
import { Database } from "bun:sqlite"
import { chmodSync, closeSync, constants, existsSync, linkSync, openSync, readSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import type { SQL } from "bun"
import { displayCredentialUrl } from "../../../protocol/log.ts"
import { StateError } from "../data-dir.ts"
import { SIGNING_KEY_FILE } from "../signing-keys.ts"
import type { Dialect } from "./migrations.ts"

const MAGIC = "SQLite format 3\0"

function _refuse(path: string, why: string): never {
  throw new StateError(
    `${path} exists but ${why}; restore it from a backup, or remove it to start fresh (every user, node, token and audit entry it held is then gone)`,
  )
}

function _header(path: string): Buffer {
  const fd = openSync(path, "r")
  try {
    const buf = Buffer.alloc(100)
    return buf.subarray(0, readSync(fd, buf, 0, 100, 0))
  } finally {
    closeSync(fd)
  }
}

/** Makes an empty SQLite database at `path`, 0600; false when another process made one first. */
function _create(path: string): boolean {
  const tmp = `${path}.${process.pid}.new`
  rmSync(tmp, { force: true })
  closeSync(openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600))
  try {
    const db = new Database(tmp)
    db.run("PRAGMA journal_mode = WAL")
    db.close()
    linkSync(tmp, path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
    throw error
  } finally {
    rmSync(tmp, { force: true })
  }
}

/**
 * Checks the SQLite file at `path` before it is opened: a missing one is created (a fresh install),
 * an existing one must be a whole SQLite database; otherwise it refuses with the reason.
 */
export function checkSqliteFile(path: string): void {
  if (!existsSync(path) && _create(path)) return
  const stat = statSync(path)
  if (!stat.isFile()) _refuse(path, "is not a file")
  if (stat.size === 0) _refuse(path, "is empty (0 bytes), so it is not a Chimera database")
  const header = _header(path)
  if (header.length < 100 || header.subarray(0, 16).toString("latin1") !== MAGIC)
    _refuse(path, "is not a SQLite database (it does not start with SQLite's header)")
  const raw = header.readUInt16BE(16)
  const pageSize = raw === 1 ? 65_536 : raw
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) _refuse(path, "has a damaged SQLite header")
  if (stat.size % pageSize !== 0) _refuse(path, `is truncated (${stat.size} bytes is not a whole number of pages)`)
  // The header's page count holds when its change counter matches; while a write-ahead log is being
  // checkpointed the file may be shorter than it says, and SQLite completes it from the log.
  const pages = header.readUInt32BE(28)
  const counted = header.readUInt32BE(24) === header.readUInt32BE(92)
  const log = `${path}-wal`
  const logged = existsSync(log) && statSync(log).size > 0
  if (counted && !logged && stat.size < pages * pageSize)
    _refuse(path, `is truncated (${stat.size} bytes of the ${pages * pageSize} its header counts)`)
  // A database left readable by others by an older version: the password hashes must not stay so.
  for (const file of [path, log, `${path}-shm`])
    if (existsSync(file) && (statSync(file).mode & 0o077) !== 0 && statSync(file).uid === process.getuid?.())
      chmodSync(file, 0o600)
}

/**
 * Checks what an opened store holds: no tables (a fresh install, or an empty PostgreSQL database an
 * operator made for Chimera), or tables among which Chimera's schema_migrations.
 */
export async function checkSchema(db: SQL, dialect: Dialect, where: string): Promise<void> {
  const rows = (
    dialect === "sqlite"
      ? await db`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
      : await db`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()`
  ) as { name: string }[]
  const tables = rows.map((r) => r.name)
  if (tables.length === 0 || tables.includes("schema_migrations")) return
  const found = `tables (${tables.slice(0, 5).join(", ")}) but no schema_migrations`
  if (dialect === "sqlite") _refuse(where, `holds ${found}, so it is not a Chimera database`)
  throw new StateError(
    `the PostgreSQL database ${where} holds ${found}, so it is not a Chimera database; point CHIMERA_DB at Chimera's own database (an empty one is set up at first start)`,
  )
}

/**
 * A data directory with the admin token or the signing key of an earlier start, but no SQLite
 * database where the database should be, lost its database (deleted, moved, or CHIMERA_DB mistyped):
 * starting fresh there, or letting a CLI command make a new one, would hide that. Starting fresh is
 * removing those files too.
 */
export function checkDatabaseNotLost(dataDir: string, databaseUrl: string): void {
  if (!databaseUrl.startsWith("sqlite:")) return
  const path = databaseUrl.replace(/^sqlite:\/\//, "")
  if (path === ":memory:" || existsSync(path)) return
  const found = ["admin.token", SIGNING_KEY_FILE].filter((name) => existsSync(join(dataDir, name)))
  if (found.length === 0) return
  throw new StateError(
    `${path} does not exist, but ${dataDir} holds ${found.join(" and ")} from an earlier start: restore the database from a backup (or set CHIMERA_DB to where it is), or remove ${found.join(" and ")} too to start fresh`,
  )
}

/**
 * A first replica started on an empty PostgreSQL database with the data dir of a control plane that
 * ran on SQLite would begin a new fleet and leave that one's nodes and users in `chimera.db`, unread:
 * every agent refused until it enrols again, with no word of why. Chimera does not copy a fleet from
 * SQLite to PostgreSQL, so that start is refused, saying so; moving the file out of the data dir is
 * starting the new fleet on purpose. Called before the migrations, so a refusal leaves the database
 * as it was (fresh).
 */
export async function checkFleetNotLeftInSqlite(db: SQL, dialect: Dialect, dataDir: string): Promise<void> {
  if (dialect !== "postgres") return
  const file = join(dataDir, "chimera.db")
  if (!existsSync(file)) return
  const migrated =
    await db`SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`
  if (migrated.length > 0) return
  let nodes = 0
  let users = 0
  try {
    const lite = new Database(file, { readonly: true })
    try {
      const count = (sql: string) => (lite.query(sql).get() as { n: number } | null)?.n ?? 0
      nodes = count("SELECT count(*) AS n FROM nodes")
      users = count("SELECT count(*) AS n FROM users WHERE deleted_at IS NULL")
    } finally {
      lite.close()
    }
  } catch {
    return // not a Chimera database with a fleet in it (a CLI's local records, a foreign file)
  }
  if (nodes + users === 0) return
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`
  throw new StateError(
    `${file} holds a fleet on SQLite (${plural(nodes, "node")}, ${plural(users, "user")}), and CHIMERA_DB names an empty PostgreSQL database: Chimera does not copy a fleet from SQLite to PostgreSQL, so this start would begin a new one without them (every agent enrolling again with a join token). To start the new fleet anyway, move chimera.db (and any chimera.db-wal, chimera.db-shm) out of ${dataDir}; docs/replicas.md has the steps`,
  )
}

/**
 * A PostgreSQL role that may not create or alter tables (a database another role owns: since
 * PostgreSQL 15 only the owner may create in its public schema) fails the migrations with
 * "permission denied for schema public", which said nothing of what to do. It is told as a start
 * error naming the database (without its password) and the grant that fixes it.
 */
export async function refusedSchemaTold<T>(db: SQL, databaseUrl: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start()
  } catch (error) {
    if ((error as { errno?: unknown }).errno !== "42501") throw error
    const who = (
      (await db`SELECT current_database() AS db, current_user AS role`.catch(() => [])) as {
        db: string
        role: string
      }[]
    )[0]
    const fix = who ? `ALTER DATABASE ${who.db} OWNER TO ${who.role}` : "ALTER DATABASE … OWNER TO …"
    throw new StateError(
      `the PostgreSQL role in CHIMERA_DB (${displayCredentialUrl(databaseUrl)}) may not create or change Chimera's tables: ${(error as Error).message}; CHIMERA_DB must name the role that owns the database (and Chimera's tables, if an earlier start made them): as a PostgreSQL superuser, ${fix} (createdb -O ROLE makes it the owner from the start)`,
    )
  }
}
