import { expect, test } from "bun:test"
import type { NodeHealth } from "../../protocol/agent.ts"
import { createHealthHistory, SAMPLE_SPACING_S, SAMPLES } from "./health-history.ts"

const beat = (load: number): NodeHealth => ({
  nodeId: "web-1",
  agentVersion: "0.1.0",
  hostname: "web-1",
  at: new Date().toISOString(),
  uptimeSeconds: 10,
  load: [load, 0, 0],
  memory: { totalBytes: 1000, availableBytes: 250 },
  disk: { path: "/nix/store", totalBytes: 4000, freeBytes: 1000 },
  system: { profile: null, current: null, booted: null },
  desired: null,
  phase: "no-desired",
  heartbeatIntervalSeconds: 1,
})

test("one sample per spacing is kept, oldest first, and the ring drops the oldest beyond its size", () => {
  const t0 = 1_800_000_000_000
  const history = createHealthHistory(() => t0)
  history.record(beat(1), t0)
  history.record(beat(99), t0 + 1000) // too soon after the first: not kept
  history.record(beat(2), t0 + SAMPLE_SPACING_S * 1000)
  const two = history.samples("web-1")
  expect(two.map((s) => s.load1)).toEqual([1, 2])
  expect(two[0]).toMatchObject({ memoryUsedBytes: 750, memoryTotalBytes: 1000, diskUsedBytes: 3000 })
  expect(two[1]?.at).toBe(new Date(t0 + SAMPLE_SPACING_S * 1000).toISOString())

  for (let i = 3; i <= SAMPLES + 5; i++) history.record(beat(i), t0 + i * SAMPLE_SPACING_S * 1000)
  const all = history.samples("web-1")
  expect(all).toHaveLength(SAMPLES)
  expect(all[0]?.load1).toBe(6)
  expect(all.at(-1)?.load1).toBe(SAMPLES + 5)
  expect(history.samples("other")).toEqual([])
})

test("nodes past one block keep their own samples, and a forgotten node's slot serves a new node afresh", () => {
  const t0 = 1_800_000_000_000
  const history = createHealthHistory(() => t0)
  const of = (id: string, load: number): NodeHealth => ({ ...beat(load), nodeId: id, hostname: id })
  for (let n = 0; n < 1500; n++) history.record(of(`n${n}`, n), t0)
  for (let n = 0; n < 1500; n++) history.record(of(`n${n}`, n + 0.5), t0 + SAMPLE_SPACING_S * 1000)
  expect(history.samples("n3").map((s) => s.load1)).toEqual([3, 3.5])
  expect(history.samples("n1499").map((s) => s.load1)).toEqual([1499, 1499.5])

  history.forget("n3")
  expect(history.samples("n3")).toEqual([])
  history.record(of("fresh", 7), t0 + 2 * SAMPLE_SPACING_S * 1000)
  expect(history.samples("fresh").map((s) => s.load1)).toEqual([7])
  history.record(of("n3", 9), t0 + 2 * SAMPLE_SPACING_S * 1000)
  expect(history.samples("n3").map((s) => s.load1)).toEqual([9])
  expect(history.samples("n1024").map((s) => s.load1)).toEqual([1024, 1024.5])
})
