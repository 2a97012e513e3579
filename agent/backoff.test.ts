import { describe, expect, test } from "bun:test"
import { createBackoff, sleep, spreadPeriod } from "./backoff.ts"

describe("backoff", () => {
  test("doubles from the initial delay up to the cap without jitter", () => {
    const b = createBackoff({ initialMs: 2000, maxMs: 300_000, jitter: "none" })
    const delays = Array.from({ length: 10 }, () => b.next())
    expect(delays).toEqual([2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000])
    expect(b.failures).toBe(10)
  })

  test("reset starts again from the initial delay", () => {
    const b = createBackoff({ initialMs: 500, maxMs: 10_000, jitter: "none" })
    b.next()
    b.next()
    b.reset()
    expect(b.next()).toBe(500)
  })

  test("full jitter stays within [0, ceiling]", () => {
    const low = createBackoff({ initialMs: 500, maxMs: 15_000, random: () => 0 })
    const high = createBackoff({ initialMs: 500, maxMs: 15_000, random: () => 0.999999 })
    for (let i = 0; i < 12; i++) {
      expect(low.next()).toBe(0)
      expect(high.next()).toBeLessThanOrEqual(15_000)
    }
    expect(high.next()).toBeGreaterThan(14_000)
  })

  test("equal jitter never retries sooner than half the ceiling, so a failing heal cannot spin", () => {
    const b = createBackoff({ initialMs: 2000, maxMs: 300_000, jitter: "equal", random: () => 0 })
    expect(b.next()).toBe(1000)
    expect(b.next()).toBe(2000)
    for (let i = 0; i < 20; i++) b.next()
    expect(b.next()).toBe(150_000)
  })

  test("real random delays are spread and bounded", () => {
    const b = createBackoff({ initialMs: 1000, maxMs: 1000, jitter: "full" })
    const delays = Array.from({ length: 200 }, () => b.next())
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...delays)).toBeLessThanOrEqual(1000)
    expect(new Set(delays).size).toBeGreaterThan(50)
  })

  test("a spread period stays within ±20 % and is spread across it", () => {
    expect(spreadPeriod(5000, 0.2, () => 0)).toBe(4000)
    expect(spreadPeriod(5000, 0.2, () => 0.5)).toBe(5000)
    expect(spreadPeriod(5000, 0.2, () => 0.999999)).toBe(6000)
    const real = Array.from({ length: 1000 }, () => spreadPeriod(5000))
    expect(Math.min(...real)).toBeGreaterThanOrEqual(4000)
    expect(Math.max(...real)).toBeLessThanOrEqual(6000)
    // Agents that start together end up apart: a thousand periods take hundreds of distinct values.
    expect(new Set(real).size).toBeGreaterThan(300)
  })

  test("sleep ends early when its signal aborts", async () => {
    const ac = new AbortController()
    const t0 = performance.now()
    setTimeout(() => ac.abort(), 20)
    await sleep(10_000, ac.signal)
    expect(performance.now() - t0).toBeLessThan(1000)
  })
})
