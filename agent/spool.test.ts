import { afterEach, describe, expect, test } from "bun:test"
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { openSpool, type ReportInput } from "./spool.ts"

const closure = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-system-1" as StorePath
const started = (attempt: number): ReportInput => ({ type: "heal.started", data: { desired: closure, attempt } })

const dirs: string[] = []
function spoolPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "chimera-spool-"))
  dirs.push(dir)
  return join(dir, "spool.jsonl")
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe("spool", () => {
  test("numbers reports from 1 and keeps them in order", () => {
    const spool = openSpool(spoolPath())
    const seqs = [1, 2, 3].map((n) => spool.append(started(n)).seq)
    expect(seqs).toEqual([1, 2, 3])
    expect(spool.pending().map((r) => r.seq)).toEqual([1, 2, 3])
    expect(spool.pending(2).map((r) => r.seq)).toEqual([1, 2])
    spool.close()
  })

  test("the file is private to root", () => {
    const path = spoolPath()
    openSpool(path).close()
    expect(statSync(path).mode & 0o777).toBe(0o600)
  })

  test("what was appended survives a crash and replays in order", () => {
    const path = spoolPath()
    const first = openSpool(path)
    for (let i = 1; i <= 5; i++) first.append(started(i))
    // No close: the process "dies" here; only what append fsync'd may count.
    const second = openSpool(path)
    expect(second.pending().map((r) => r.seq)).toEqual([1, 2, 3, 4, 5])
    expect(second.pending().map((r) => (r.type === "heal.started" ? r.data.attempt : 0))).toEqual([1, 2, 3, 4, 5])
    expect(second.append(started(6)).seq).toBe(6)
    second.close()
  })

  test("acknowledged reports are dropped and never replayed", () => {
    const path = spoolPath()
    const spool = openSpool(path)
    for (let i = 1; i <= 4; i++) spool.append(started(i))
    spool.ack(2)
    expect(spool.pending().map((r) => r.seq)).toEqual([3, 4])
    spool.close()
    const reopened = openSpool(path)
    expect(reopened.ackedSeq).toBe(2)
    expect(reopened.pending().map((r) => r.seq)).toEqual([3, 4])
    reopened.close()
  })

  test("sequence numbers never repeat across restarts, even when compaction emptied the file", () => {
    const path = spoolPath()
    const a = openSpool(path)
    a.append(started(1))
    a.append(started(2))
    a.ack(2)
    expect(a.pending()).toEqual([])
    a.close()
    const b = openSpool(path)
    expect(b.pending()).toEqual([])
    expect(b.append(started(3)).seq).toBe(3)
    b.close()
    const c = openSpool(path)
    expect(c.append(started(4)).seq).toBe(4)
    expect(c.pending().map((r) => r.seq)).toEqual([3, 4])
    c.close()
  })

  test("a torn last line is ignored and later appends stay readable", () => {
    const path = spoolPath()
    const a = openSpool(path)
    a.append(started(1))
    a.append(started(2))
    a.close()
    appendFileSync(path, '{"seq":3,"at":"2025-01-01T00:00:00.000Z","type":"heal.sta')
    const b = openSpool(path)
    expect(b.pending().map((r) => r.seq)).toEqual([1, 2])
    expect(b.append(started(3)).seq).toBe(3)
    b.close()
    const c = openSpool(path)
    expect(c.pending().map((r) => r.seq)).toEqual([1, 2, 3])
    c.close()
    for (const line of readFileSync(path, "utf8").trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow()
  })

  test("an acknowledgement beyond what was issued or below what was acknowledged changes nothing", () => {
    const spool = openSpool(spoolPath())
    spool.append(started(1))
    spool.append(started(2))
    spool.ack(99)
    expect(spool.ackedSeq).toBe(2)
    spool.ack(1)
    expect(spool.ackedSeq).toBe(2)
    expect(spool.append(started(3)).seq).toBe(3)
    spool.close()
  })

  test("a compaction that fails (say, a full disk) loses nothing, and appends go on to the spool file", () => {
    const path = spoolPath()
    const spool = openSpool(path)
    for (const n of [1, 2, 3]) spool.append(started(n))
    // The rewrite's temp file cannot be created where a directory stands.
    mkdirSync(`${path}.tmp`)
    expect(() => spool.ack(2)).toThrow()
    expect(spool.ackedSeq).toBe(0)
    expect(spool.pending().map((r) => r.seq)).toEqual([1, 2, 3])
    spool.append(started(4))
    rmSync(`${path}.tmp`, { recursive: true })
    spool.ack(2)
    expect(spool.pending().map((r) => r.seq)).toEqual([3, 4])
    spool.append(started(5))
    spool.close()
    const reopened = openSpool(path)
    expect(reopened.pending().map((r) => r.seq)).toEqual([3, 4, 5])
    reopened.close()
  })

  test("appends notify listeners so the sender wakes at once", () => {
    const spool = openSpool(spoolPath())
    let woken = 0
    spool.onAppend(() => woken++)
    spool.append(started(1))
    expect(woken).toBe(1)
    spool.close()
  })
})
