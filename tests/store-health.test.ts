// GET /api/health answers for the store, not only for the process: against a real control plane, a
// SQLite file overwritten with garbage, a full disk and a stopped PostgreSQL server each turn it into
// a 503 that says why, while GET /api/health/live, the liveness probe, stays 200.

import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { closeSync, openSync, statSync, writeSync } from "node:fs"
import { join } from "node:path"
import { freePort, startInProcess } from "./support/control-plane.ts"
import { startPostgres } from "./support/postgres.ts"
import { createTestNode } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

type Health = { status: string; store: string }
const health = async (url: string) => {
  const res = await fetch(`${url}/api/health`)
  return { code: res.status, ...((await res.json()) as Health) }
}
const live = async (url: string) => (await fetch(`${url}/api/health/live`)).status

/** Waits for the health answer to turn 503 (answers are reused for up to 1.5 s), and returns it. */
const unhealthy = (url: string) =>
  waitFor(
    "GET /api/health to answer 503",
    () => health(url),
    (h) => h.code === 503,
  )

describe("store health", () => {
  test("a SQLite file overwritten with garbage: 503 with SQLite's reason; liveness stays 200", async () => {
    await using cp = await startInProcess()
    expect(await health(cp.url)).toMatchObject({ code: 200, status: "ok", store: "ok" })
    const path = join(cp.dataDir, "chimera.db")
    // What SQLite does by itself every 1,000 pages: the WAL's pages go into the main file, which a
    // failing disk (or a careless `dd`) then ruins.
    const other = new Database(path)
    other.run("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    const size = statSync(path).size
    const fd = openSync(path, "r+")
    writeSync(fd, Buffer.alloc(size - 4096, 0x5a), 0, size - 4096, 4096)
    closeSync(fd)
    const h = await unhealthy(cp.url)
    expect(h.status).toBe("unavailable")
    expect(h.store).toContain("the database cannot be read and written")
    expect(h.store).toMatch(/malformed|not a database/)
    expect(await live(cp.url)).toBe(200)
  })

  // A read-only remount is refused (EBUSY) while the database is open for writing, so a full disk is
  // how a data directory becomes unwritable under a running control plane.
  test("a full data directory: 503 with the reason, 200 again once there is room", async () => {
    await using node = await createTestNode({ name: "cp-disk" })
    // The control plane runs inside the node's mount namespace, its data on a 4 MiB tmpfs of its own.
    const data = "/run/chimera-data"
    expect((await node.exec(["mkdir", "-p", data])).code).toBe(0)
    expect((await node.exec(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", data])).code).toBe(0)
    const port = freePort()
    const url = `http://127.0.0.1:${port}`
    const cp = node.spawn(
      [process.execPath, join(import.meta.dir, "../control/main.ts"), "web", "--port", String(port)],
      {
        env: { ...process.env, CHIMERA_DATA_DIR: data, CHIMERA_CONFIG_FILE: "" },
        stdout: "ignore",
        stderr: "pipe",
      },
    )
    try {
      await waitFor(
        "the control plane up",
        () => health(url).catch(() => ({ code: 0 })),
        (h) => h.code === 200,
        60_000,
      )
      const fill = await node.exec(["dd", "if=/dev/zero", `of=${data}/filler`, "bs=64k"])
      expect(fill.code).not.toBe(0) // dd stops at "No space left on device"
      const full = await unhealthy(url)
      expect(full.store).toMatch(/full|disk I\/O|no space/i)
      expect(await live(url)).toBe(200)

      expect((await node.exec(["rm", `${data}/filler`])).code).toBe(0)
      await waitFor(
        "GET /api/health to recover once there is room",
        () => health(url),
        (h) => h.code === 200,
      )
    } finally {
      cp.kill("SIGTERM")
      await cp.exited
    }
  }, 120_000)

  test("PostgreSQL stopped: 503 with the reason; liveness stays 200", async () => {
    const pg = await startPostgres()
    try {
      await using cp = await startInProcess({ databaseUrl: await pg.database("health") })
      expect((await health(cp.url)).code).toBe(200)
      await pg.stop()
      const h = await unhealthy(cp.url)
      expect(h.store).toContain("the database cannot be read and written")
      expect(await live(cp.url)).toBe(200)
    } finally {
      await pg.stop()
    }
  }, 120_000)
})
