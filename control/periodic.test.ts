import { afterEach, expect, test } from "bun:test"
import { setLogSink } from "../protocol/log.ts"
import { every } from "./periodic.ts"

afterEach(() => setLogSink((l) => process.stderr.write(`${l}\n`)))

test("a job failing the same way on every tick is said once, and once more when it works again", async () => {
  const lines: { level: string; msg: string; failures?: number }[] = []
  setLogSink((l) => lines.push(JSON.parse(l)))
  let down = true
  const job = every(3_600_000, "reachability sweep failed", async () => {
    if (down) throw new Error("Failed to connect")
  })
  try {
    for (let i = 0; i < 5; i++) await job.run()
    expect(lines.map((l) => [l.level, l.msg])).toEqual([["error", "reachability sweep failed"]])
    down = false
    await job.run()
    await job.run()
  } finally {
    job.stop()
  }
  expect(lines).toHaveLength(2)
  expect(lines[1]).toMatchObject({
    level: "warning",
    msg: "recovered from: reachability sweep failed",
    failures: 5,
  })
})

test("another error while a job fails is said at once", async () => {
  const lines: { msg: string; error?: { message: string } }[] = []
  setLogSink((l) => lines.push(JSON.parse(l)))
  const errors = ["Failed to connect", "Failed to connect", "the database system is starting up"]
  const job = every(3_600_000, "incident watches failed", async () => {
    throw new Error(errors.shift() ?? "done")
  })
  try {
    for (let i = 0; i < 3; i++) await job.run()
  } finally {
    job.stop()
  }
  expect(lines.map((l) => l.error?.message)).toEqual(["Failed to connect", "the database system is starting up"])
})
