// A private PostgreSQL server for tests: Debian's binaries, a fresh cluster in a temp dir owned by
// the postgres user (the server refuses to run as root), listening on 127.0.0.1 and a free port only,
// trust authentication for the one local role. Each test gets its own database.
import { chown, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SQL } from "bun"
import { freePort } from "./control-plane.ts"
import { requireTool, runOk } from "./tools.ts"

export interface TestPostgres extends AsyncDisposable {
  /** A new, empty database's URL. */
  database(name: string): Promise<string>
  /** The same database's URL through the server's Unix socket (`USER@/DB?host=DIR&port=N`, as NixOS's local PostgreSQL is reached). */
  socketUrl(url: string): string
  /** Stops the server (`pg_ctl stop -m fast`, as an operator's restart does), keeping its data. */
  halt(): Promise<void>
  /** Starts the halted server again on the same port and data. */
  resume(): Promise<void>
  stop(): Promise<void>
}

export async function startPostgres(): Promise<TestPostgres> {
  const pgCtl = requireTool("pg_ctl")
  const initdb = requireTool("initdb")
  const runuser = requireTool("runuser")
  const dir = await mkdtemp(join(tmpdir(), "chimera-pg-"))
  await chown(dir, Number(await runOk(["id", "-u", "postgres"])), Number(await runOk(["id", "-g", "postgres"])))
  const asPostgres = (cmd: string[]) => runOk([runuser, "-u", "postgres", "--", ...cmd])
  await asPostgres([initdb, "-D", join(dir, "data"), "-U", "chimera", "--auth=trust", "-E", "UTF8"])
  const port = freePort()
  const start = () =>
    asPostgres([
      pgCtl,
      "-D",
      join(dir, "data"),
      "-o",
      `-h 127.0.0.1 -p ${port} -k ${dir}`,
      "-l",
      join(dir, "log"),
      "-w",
      "start",
    ])
  await start()
  const admin = new SQL(`postgres://chimera@127.0.0.1:${port}/postgres`)
  const stop = async () => {
    await admin.close()
    await asPostgres([pgCtl, "-D", join(dir, "data"), "-m", "immediate", "stop"]).catch(() => "")
    await rm(dir, { recursive: true, force: true })
  }
  return {
    async database(name) {
      await admin.unsafe(`CREATE DATABASE "${name.replace(/[^a-z0-9_]/g, "_")}"`)
      return `postgres://chimera@127.0.0.1:${port}/${name.replace(/[^a-z0-9_]/g, "_")}`
    },
    halt: async () => void (await asPostgres([pgCtl, "-D", join(dir, "data"), "-m", "fast", "-w", "stop"])),
    resume: async () => void (await start()),
    socketUrl: (url) => `postgres://chimera@/${new URL(url).pathname.slice(1)}?host=${dir}&port=${port}`,
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
