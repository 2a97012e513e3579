// The control plane's data directory and database file, with the real binary (`chimera web`) on real
// files: a directory left open (0755, a 0644 database) is made this user's alone at start, one owned by
// another user is refused, and a database file that is empty, truncated or not Chimera's is refused
// with what to do, never taken for a fresh install. Only a missing file is a fresh install.
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { chmodSync, chownSync, existsSync, mkdirSync, statSync, truncateSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SQL } from "bun"
import { freePort, spawnControlPlane } from "./support/control-plane.ts"
import { startPostgres } from "./support/postgres.ts"
import { streamText } from "./support/stream.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const NOBODY = 65534

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8)

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await mkdtemp(join(tmpdir(), "chimera-datadir-"))
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) }
}

/** `chimera web` on `dataDir`: whether it came up (then stopped) or exited, with its stderr. */
async function startWeb(
  dataDir: string,
  databaseUrl = "",
): Promise<{ started: boolean; code: number | null; stderr: string }> {
  const port = freePort()
  const proc = Bun.spawn([process.execPath, MAIN, "web", "--host", "127.0.0.1", "--port", String(port)], {
    env: { ...process.env, CHIMERA_DATA_DIR: dataDir, CHIMERA_CONFIG_FILE: "", CHIMERA_DB: databaseUrl },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  for (;;) {
    if (proc.exitCode !== null) break
    const up = await fetch(`http://127.0.0.1:${port}/api/health`).then(
      (r) => r.ok,
      () => false,
    )
    if (up) {
      proc.kill("SIGTERM")
      break
    }
    await Bun.sleep(25)
  }
  const code = await proc.exited
  return { started: proc.signalCode !== null || code === 0, code, stderr: await new Response(proc.stderr).text() }
}

/** A real Chimera database, made by starting and stopping a control plane, left whole (no -wal). */
async function chimeraDatabase(dataDir: string): Promise<string> {
  const cp = await spawnControlPlane(freePort(), { dataDir })
  await cp.stop()
  const db = join(dataDir, "chimera.db")
  expect(existsSync(`${db}-wal`) ? statSync(`${db}-wal`).size : 0).toBe(0)
  return db
}

describe("the data directory", () => {
  test("one left open to other users is made this user's alone, and so is every file in it", async () => {
    await using tmp = await tempDir()
    const data = join(tmp.path, "data")
    mkdirSync(data, { mode: 0o755 })
    chmodSync(data, 0o755)
    // First start in a directory made by hand: what it creates is 0600 from the start.
    const cp = await spawnControlPlane(freePort(), { dataDir: data })
    try {
      const db = join(data, "chimera.db")
      expect(mode(data)).toBe("700")
      for (const file of [db, `${db}-wal`, `${db}-shm`, join(data, "admin.token"), join(data, "jwt-signing-key.pem")])
        expect({ file, mode: mode(file) }).toEqual({ file, mode: "600" })
    } finally {
      await cp.stop()
    }
    // A directory and files an older version or a person left open: tightened at the next start.
    chmodSync(data, 0o755)
    for (const file of ["chimera.db", "admin.token", "jwt-signing-key.pem"]) chmodSync(join(data, file), 0o644)
    writeFileSync(join(data, "notes.txt"), "x", { mode: 0o644 })
    mkdirSync(join(data, "sub"), { mode: 0o755 })
    chmodSync(join(data, "sub"), 0o755)
    const again = await startWeb(data)
    expect(again.started).toBe(true)
    expect(again.stderr).toContain("made it this user's alone")
    expect(mode(data)).toBe("700")
    expect(mode(join(data, "sub"))).toBe("700")
    for (const file of ["chimera.db", "admin.token", "jwt-signing-key.pem", "notes.txt"])
      expect({ file, mode: mode(join(data, file)) }).toEqual({ file, mode: "600" })
  }, 60_000)

  test("one owned by another user, or holding a file another user owns, is refused, saying whose it is", async () => {
    await using tmp = await tempDir()
    const data = join(tmp.path, "data")
    mkdirSync(data, { mode: 0o700 })
    chownSync(data, NOBODY, NOBODY)
    const r = await startWeb(data)
    expect(r.started).toBe(false)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`the data directory ${data} belongs to uid ${NOBODY}, not to this user (uid 0)`)
    expect(existsSync(join(data, "chimera.db"))).toBe(false)
    // So is a file in it that another user owns: they could chmod it open again at will.
    chownSync(data, 0, 0)
    const db = await chimeraDatabase(data)
    chownSync(db, NOBODY, NOBODY)
    const file = await startWeb(data)
    expect({ started: file.started, code: file.code }).toEqual({ started: false, code: 1 })
    expect(file.stderr).toContain(`the file ${db} belongs to uid ${NOBODY}`)
  }, 60_000)
})

describe("the port", () => {
  test("a second control plane on a port one already listens on is refused, whatever its data dir", async () => {
    await using a = await tempDir()
    await using b = await tempDir()
    const port = freePort()
    const first = await spawnControlPlane(port, { dataDir: a.path })
    try {
      const second = Bun.spawn([process.execPath, MAIN, "web", "--host", "127.0.0.1", "--port", String(port)], {
        env: { ...process.env, CHIMERA_DATA_DIR: b.path, CHIMERA_CONFIG_FILE: "", CHIMERA_DB: "" },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      })
      // Started, it would run until stopped: a few seconds are plenty to fail.
      const timer = setTimeout(() => second.kill("SIGKILL"), 15_000)
      const code = await second.exited
      clearTimeout(timer)
      expect({ code, signal: second.signalCode }).toEqual({ code: 1, signal: null })
      const stderr = await new Response(second.stderr).text()
      // Said as what to do, not as an unexpected failure; and nothing was made in the new data dir, so
      // the start that succeeds later still announces the admin token it creates.
      expect(stderr).toContain(`error 127.0.0.1:${port} is already in use`)
      expect(stderr).toContain("start with --port N")
      expect(stderr).not.toContain("unexpected failure")
      expect(existsSync(join(b.path, "admin.token"))).toBe(false)
      // The first still answers every request alone.
      for (let i = 0; i < 10; i++) expect((await first.api("/api/nodes")).status).toBe(200)
    } finally {
      await first.stop()
    }
  }, 60_000)

  test("on a port other than 8080 it tells how to point the CLI at it, unless CHIMERA_URL already does, and at its data dir", async () => {
    await using dir = await tempDir()
    const port = freePort()
    /** What `chimera web` prints before it serves, with CHIMERA_URL as given. */
    const firstLines = async (chimeraUrl: string) => {
      const proc = Bun.spawn([process.execPath, MAIN, "web", "--host", "127.0.0.1", "--port", String(port)], {
        env: {
          ...process.env,
          CHIMERA_DATA_DIR: dir.path,
          CHIMERA_CONFIG_FILE: "",
          CHIMERA_DB: "",
          CHIMERA_URL: chimeraUrl,
        },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "ignore",
      })
      const stdout = streamText(proc.stdout)
      try {
        expect(await stdout.until((text) => /admin token in/i.test(text))).toBe(false)
        await Bun.sleep(200)
        return stdout.text
      } finally {
        proc.kill("SIGTERM")
        await proc.exited
      }
    }
    // The data dir too: another shell's CLI looks for the admin token in the default one.
    expect(await firstLines("")).toContain(
      `For the CLI in another shell: export CHIMERA_URL=http://127.0.0.1:${port} CHIMERA_DATA_DIR=${dir.path}\n`,
    )
    expect(await firstLines(`http://127.0.0.1:${port}/`)).toContain(
      `For the CLI in another shell: export CHIMERA_DATA_DIR=${dir.path}\n`,
    )
  }, 60_000)
})

describe("the database file", () => {
  const refused = async (data: string, reason: string) => {
    const r = await startWeb(data)
    expect({ started: r.started, code: r.code }).toEqual({ started: false, code: 1 })
    expect(r.stderr).toContain(reason)
    expect(r.stderr).toContain("restore it from a backup, or remove it to start fresh")
  }

  test("an empty or foreign file where chimera.db should be is refused, and left as it was", async () => {
    await using tmp = await tempDir()
    const dir = tmp.path
    const db = join(dir, "chimera.db")
    writeFileSync(db, "")
    await refused(dir, `${db} exists but is empty (0 bytes), so it is not a Chimera database`)
    expect(statSync(db).size).toBe(0)
    // A CLI command that opens the store refuses it too, rather than migrating it into a new database.
    const cli = await run([process.execPath, MAIN, "deployments"], {
      env: { CHIMERA_DATA_DIR: dir, CHIMERA_DB: "", CHIMERA_URL: "" },
    })
    expect(cli.code).toBe(1)
    expect(cli.stderr).toContain(`${db} exists but is empty`)
    expect(statSync(db).size).toBe(0)

    writeFileSync(db, "not a database at all\n".repeat(10))
    await refused(dir, "is not a SQLite database")
    const other = new Database(db.replace("chimera.db", "other.db"))
    other.run("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    other.close()
    await rm(db)
    await Bun.write(db, Bun.file(join(dir, "other.db")))
    await refused(dir, "holds tables (photos) but no schema_migrations, so it is not a Chimera database")
  }, 60_000)

  test("a truncated Chimera database is refused", async () => {
    await using tmp = await tempDir()
    const dir = tmp.path
    const db = await chimeraDatabase(dir)
    const size = statSync(db).size
    truncateSync(db, size / 2 - ((size / 2) % 4096))
    await refused(dir, "is truncated")
    truncateSync(db, 1000)
    await refused(dir, "is truncated (1000 bytes is not a whole number of pages)")
  }, 60_000)

  test("a data directory whose database is gone but its admin token and key remain is refused", async () => {
    await using tmp = await tempDir()
    const dir = tmp.path
    const db = await chimeraDatabase(dir)
    await rm(db)
    const r = await startWeb(dir)
    expect({ started: r.started, code: r.code }).toEqual({ started: false, code: 1 })
    expect(r.stderr).toContain(`${db} does not exist, but ${dir} holds admin.token and jwt-signing-key.pem`)
    expect(existsSync(db)).toBe(false)
    // Without the admin token a CLI command keeps its records in a local store: it does not make a new
    // database in the lost one's place while the signing key is left, and neither does the control plane.
    await rm(join(dir, "admin.token"))
    const cli = await run([process.execPath, MAIN, "deployments"], {
      env: { CHIMERA_DATA_DIR: dir, CHIMERA_DB: "", CHIMERA_URL: "" },
    })
    expect(cli.code).toBe(1)
    expect(cli.stderr).toContain(`${db} does not exist, but ${dir} holds jwt-signing-key.pem`)
    expect((await startWeb(dir)).started).toBe(false)
    expect(existsSync(db)).toBe(false)
    // Removing them too is starting fresh, on purpose.
    await rm(join(dir, "jwt-signing-key.pem"))
    expect((await startWeb(dir)).started).toBe(true)
  }, 60_000)

  test("a PostgreSQL database holding tables but not Chimera's is refused; an empty one is a fresh install", async () => {
    await using pg = await startPostgres()
    await using tmp = await tempDir()
    const foreign = await pg.database("foreign_app")
    const sql = new SQL(foreign)
    await sql`CREATE TABLE photos (id INTEGER PRIMARY KEY)`
    await sql.close()
    const r = await startWeb(tmp.path, foreign)
    expect({ started: r.started, code: r.code }).toEqual({ started: false, code: 1 })
    expect(r.stderr).toContain("holds tables (photos) but no schema_migrations, so it is not a Chimera database")
    expect((await startWeb(join(tmp.path, "fresh"), await pg.database("chimera_fresh"))).started).toBe(true)
  }, 120_000)

  test("a data dir whose SQLite database holds a fleet, started on an empty PostgreSQL database, is refused: the fleet would not come along", async () => {
    await using pg = await startPostgres()
    await using tmp = await tempDir()
    const dir = tmp.path
    const file = await chimeraDatabase(dir)
    const lite = new Database(file)
    lite.run(
      "INSERT INTO users (id, username, password_hash, role, created_at, password_changed_at) VALUES ('u1', 'alice', 'x', 'admin', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    )
    lite.close()
    const url = await pg.database("chimera_moved")
    const r = await startWeb(dir, url)
    expect({ started: r.started, code: r.code }).toEqual({ started: false, code: 1 })
    expect(r.stderr).toContain(`${file} holds a fleet on SQLite (0 nodes, 1 user)`)
    expect(r.stderr).toContain("move chimera.db")
    // Nothing was made in the PostgreSQL database: it is still a fresh install.
    const sql = new SQL(url)
    const tables = await sql`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
    await sql.close()
    expect(tables).toEqual([])
    // Moved out of the data dir, it is left behind on purpose: the new fleet starts.
    await rm(file)
    expect((await startWeb(dir, url)).started).toBe(true)
  }, 120_000)

  test("a PostgreSQL role that may not create tables in the database is told so, with what to grant", async () => {
    await using pg = await startPostgres()
    await using tmp = await tempDir()
    // A database made by another role (here the server's superuser), as a DBA might: since PostgreSQL
    // 15 only the database's owner may create in its public schema.
    const owned = await pg.database("chimera_not_owned")
    const admin = new SQL(owned)
    await admin`CREATE ROLE limited LOGIN`
    await admin.close()
    const url = owned.replace("//chimera@", "//limited@")
    const r = await startWeb(tmp.path, url)
    expect({ started: r.started, code: r.code }).toEqual({ started: false, code: 1 })
    expect(r.stderr).not.toContain("unexpected failure")
    expect(r.stderr).toContain(
      `the PostgreSQL role in CHIMERA_DB (${url.replace(/\/\/[^@]*@/, "//[redacted]@")}) may not create or change Chimera's tables: permission denied for schema public`,
    )
    expect(r.stderr).toContain("ALTER DATABASE chimera_not_owned OWNER TO limited")
  }, 120_000)

  test("a PostgreSQL URL through a Unix socket, with a user and no host (USER@/DB?host=DIR), is used", async () => {
    await using pg = await startPostgres()
    await using tmp = await tempDir()
    const url = pg.socketUrl(await pg.database("chimera_socket"))
    const r = await startWeb(tmp.path, url)
    expect({ started: r.started, stderr: r.stderr }).toMatchObject({ started: true })
    expect(r.stderr).not.toContain("is not a URL PostgreSQL can be reached at")
  }, 120_000)

  test("a PostgreSQL server that cannot be reached is named (without its password) with what to check", async () => {
    await using tmp = await tempDir()
    const port = freePort()
    // The second password is typed unencoded: for a URL parser its `/` ends the authority (the host is
    // `t`, the rest a path), so only the URL's last `@` tells where the password ends.
    for (const [password, parts, hint] of [
      ["s3cret-pw", ["s3cret-pw"], null],
      ["s3cr@t/pw-tail", ["s3cr", "pw-tail"], "%-encode `@` as %40, `/` as %2F"],
    ] as const) {
      const r = await startWeb(tmp.path, `postgres://chimera:${password}@127.0.0.1:${port}/chimera`)
      expect({ password, started: r.started, code: r.code }).toEqual({ password, started: false, code: 1 })
      expect(r.stderr).toContain(
        `cannot use the PostgreSQL database postgres://[redacted]@127.0.0.1:${port}/chimera (CHIMERA_DB)`,
      )
      expect(r.stderr).toContain("check that PostgreSQL runs there")
      expect(r.stderr).not.toContain("unexpected failure")
      for (const part of parts) expect(r.stderr).not.toContain(part)
      if (hint) expect(r.stderr).toContain(hint)
      else expect(r.stderr).not.toContain("%-encode")
    }
  }, 60_000)

  test("a CHIMERA_DB that is no database URL says what one looks like, without its password", async () => {
    await using tmp = await tempDir()
    for (const [url, says] of [
      ["postgres://chimera:s3cret-pw@127.0.0.1:99999/chimera", "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"],
      ["postgres://chimera:s3cret-pw@[::1/chimera", "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"],
      ["mysql://chimera:s3cret-pw@127.0.0.1/chimera", "use sqlite://PATH or postgres://"],
      ["mysql://chimera:s3cret-pw?@127.0.0.1/chimera", "use sqlite://PATH or postgres://"],
    ] as const) {
      const r = await startWeb(tmp.path, url)
      expect({ url, code: r.code }).toEqual({ url, code: 1 })
      expect(r.stderr).toContain(says)
      expect(r.stderr).not.toContain("unexpected failure")
      expect(r.stderr).not.toContain("s3cret-pw")
    }
  }, 60_000)
})
