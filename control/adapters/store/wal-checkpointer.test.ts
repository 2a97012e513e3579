// The WAL checkpointer copies committed pages into the database file from its own thread: pages a
// commit leaves in the WAL (its own autocheckpoint off here) reach the file without this thread
// checkpointing, and stopping it leaves the database usable.

import { Database } from "bun:sqlite"
import { afterAll, expect, test } from "bun:test"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setLogSink } from "../../../protocol/log.ts"
import { startCheckpointer } from "./wal-checkpointer.ts"

const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

test("committed pages reach the database file from the checkpointer's thread", async () => {
  const dir = await mkdtemp(join(tmpdir(), "chimera-checkpointer-"))
  dirs.push(dir)
  const file = join(dir, "db.sqlite")
  const db = new Database(file)
  db.run("PRAGMA journal_mode = WAL")
  db.run("PRAGMA wal_autocheckpoint = 0")
  db.run("CREATE TABLE t (x TEXT)")
  const insert = db.prepare("INSERT INTO t VALUES (?)")
  db.transaction(() => {
    for (let i = 0; i < 2000; i++) insert.run("x".repeat(1000))
  })()
  const before = (await stat(file)).size
  expect(before).toBeLessThan(100_000) // 2 MB of rows, all still in the WAL

  const checkpointer = startCheckpointer(file, 50)
  try {
    const deadline = Date.now() + 10_000
    while ((await stat(file)).size < 2_000_000 && Date.now() < deadline) await Bun.sleep(20)
    expect((await stat(file)).size).toBeGreaterThanOrEqual(2_000_000)
  } finally {
    checkpointer.stop()
    checkpointer.stop()
  }
  await checkpointer.ended // its thread has ended
  // Stopped: what is committed now stays in the WAL, and the database takes writes as before.
  const stopped = (await stat(file)).size
  db.transaction(() => {
    for (let i = 0; i < 1000; i++) insert.run("y".repeat(1000))
  })()
  await Bun.sleep(300)
  expect((await stat(file)).size).toBe(stopped)
  expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 3000 })
  db.close()
})

test("a checkpointer that cannot open its file says so in the log and tells its owner once", async () => {
  const lines: string[] = []
  let failures = 0
  setLogSink((line) => lines.push(line))
  try {
    const checkpointer = startCheckpointer(join(tmpdir(), "chimera-no-such-dir", "db.sqlite"), 50, () => failures++)
    const deadline = Date.now() + 10_000
    while (lines.length === 0 && Date.now() < deadline) await Bun.sleep(20)
    checkpointer.stop()
  } finally {
    setLogSink((line) => process.stderr.write(`${line}\n`))
  }
  expect(failures).toBe(1)
  expect(lines).toHaveLength(1)
  expect(JSON.parse(lines[0] as string)).toMatchObject({
    level: "warning",
    msg: "the WAL checkpointer failed; commits checkpoint themselves",
    error: expect.stringContaining("cannot open the database"),
  })
})
