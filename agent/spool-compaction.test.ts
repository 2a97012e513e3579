// The spool's size cap: progress reports go first, heal outcomes only when nothing else is left, and
// every loss is counted in one reports.compacted report that takes the place of what it replaced.
import { afterEach, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AgentReport } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { openSpool, type ReportInput } from "./spool.ts"

const closure = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-system-1" as StorePath
// Small caps keep these quick (every append is fsync'd); the agent's flag takes 1 MiB at least.
const CAP = 64 * 1024
const started = (attempt: number): ReportInput => ({ type: "heal.started", data: { desired: closure, attempt } })
const failed = (attempt: number, output = "x".repeat(6000)): ReportInput => ({
  type: "heal.failed",
  data: { desired: closure, attempt, durationMs: 1, error: "switch failed", output, retryInMs: 1000 },
})

const dirs: string[] = []
function spoolPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "chimera-spool-cap-"))
  dirs.push(dir)
  return join(dir, "spool.jsonl")
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const summaries = (r: AgentReport[]) => r.flatMap((x) => (x.type === "reports.compacted" ? [x] : []))

describe("spool size cap", () => {
  test("over the cap, the oldest progress reports are compacted into one counted summary; heal outcomes stay", () => {
    const path = spoolPath()
    const spool = openSpool(path, { maxBytes: CAP })
    for (let i = 1; i <= 5; i++) spool.append(failed(i))
    for (let i = 1; i <= 1000; i++) spool.append(started(i))
    expect(spool.bytes).toBeLessThanOrEqual(CAP)
    expect(statSync(path).size).toBeLessThanOrEqual(CAP + 200)
    const pending = spool.pending()
    expect(pending.filter((r) => r.type === "heal.failed")).toHaveLength(5)
    const [summary, ...more] = summaries(pending)
    expect(more).toEqual([])
    if (!summary) throw new Error("no summary")
    expect(summary.data.criticalDropped).toBe(0)
    const kept = pending.filter((r) => r.type === "heal.started").length
    // Every heal.started is either still there or counted: none vanished without a word.
    expect(summary.data.byType).toEqual({ "heal.started": 1000 - kept })
    expect(summary.data.dropped).toBe(1000 - kept)
    expect(summary.data.maxBytes).toBe(CAP)
    // The oldest went: what is kept is the newest run, and the sequence stays in order.
    const keptAttempts = pending.flatMap((r) => (r.type === "heal.started" ? [r.data.attempt] : []))
    expect(keptAttempts.at(-1)).toBe(1000)
    expect(keptAttempts[0]).toBe(1000 - kept + 1)
    const seqs = pending.map((r) => r.seq)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    expect(new Set(seqs).size).toBe(seqs.length)
    spool.close()
    // What is on disk is what was compacted: a restart sends the same.
    const reopened = openSpool(path, { maxBytes: CAP })
    expect(reopened.pending()).toEqual(pending)
    expect(reopened.append(started(1)).seq).toBe(1006)
    reopened.close()
  })

  test("when only heal outcomes are left they go too, oldest first, counted as lost", () => {
    const spool = openSpool(spoolPath(), { maxBytes: CAP })
    for (let i = 1; i <= 40; i++) spool.append(failed(i))
    expect(spool.bytes).toBeLessThanOrEqual(CAP)
    const pending = spool.pending()
    const [summary] = summaries(pending)
    if (!summary) throw new Error("no summary")
    const kept = pending.filter((r) => r.type === "heal.failed")
    expect(summary.data.criticalDropped).toBe(40 - kept.length)
    expect(summary.data.byType).toEqual({ "heal.failed": 40 - kept.length })
    expect(kept.at(-1)?.type === "heal.failed" && kept.at(-1)?.data).toMatchObject({ attempt: 40 })
    spool.close()
  })

  test("a second compaction folds the first summary in, so summaries never pile up", () => {
    const spool = openSpool(spoolPath(), { maxBytes: CAP })
    for (let i = 1; i <= 2000; i++) spool.append(started(i))
    const pending = spool.pending()
    const all = summaries(pending)
    expect(all).toHaveLength(1)
    const kept = pending.filter((r) => r.type === "heal.started").length
    expect(all[0]?.data.dropped).toBe(2000 - kept)
    expect(all[0]?.data.fromSeq).toBe(1)
    spool.close()
  })

  test("a spool that opens over a smaller cap is compacted at once", () => {
    const path = spoolPath()
    const big = openSpool(path, { maxBytes: 64 * CAP })
    for (let i = 1; i <= 1000; i++) big.append(started(i))
    big.close()
    expect(statSync(path).size).toBeGreaterThan(CAP)
    const small = openSpool(path, { maxBytes: CAP })
    expect(small.bytes).toBeLessThanOrEqual(CAP)
    expect(summaries(small.pending())).toHaveLength(1)
    small.close()
  })

  test("setAside drops only the oldest pending report", () => {
    const spool = openSpool(spoolPath())
    for (const n of [1, 2, 3]) spool.append(started(n))
    expect(() => spool.setAside(2)).toThrow(/not the oldest/)
    spool.setAside(1)
    expect(spool.pending().map((r) => r.seq)).toEqual([2, 3])
    spool.close()
  })
})
