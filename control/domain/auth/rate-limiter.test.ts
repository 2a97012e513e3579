import { describe, expect, test } from "bun:test"
import { createRateLimiter, DEFAULT_LIMITS, LIMIT_NAMES, rateLimited, windowLabel } from "./rate-limiter.ts"

const clockAt = (start: number) => {
  let t = start
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) }
}

describe("rate limiter", () => {
  test("defaults: 10 sessions, 60 commands, 100 WebSocket messages, 300 API requests a minute; 10 rotations an hour", () => {
    expect(DEFAULT_LIMITS.sessions.limit).toBe(10)
    expect(DEFAULT_LIMITS.commands.limit).toBe(60)
    expect(DEFAULT_LIMITS.websocket.limit).toBe(100)
    expect(DEFAULT_LIMITS.api.limit).toBe(300)
    for (const name of LIMIT_NAMES)
      expect(DEFAULT_LIMITS[name].windowMs).toBe(name === "rotations" ? 3_600_000 : 60_000)
    expect(DEFAULT_LIMITS.rotations.limit).toBe(10)
  })

  test("each limit counts per key in a fixed window and resets when the window passes", () => {
    const clock = clockAt(0)
    const limiter = createRateLimiter(DEFAULT_LIMITS, clock)
    for (const name of ["sessions", "commands", "websocket"] as const) {
      const { limit } = DEFAULT_LIMITS[name]
      for (let i = 0; i < limit; i++) expect(limiter.hit(name, "k1").allowed).toBe(true)
      const over = limiter.hit(name, "k1")
      expect(over).toMatchObject({ allowed: false, remaining: 0, limit, retryAfterSeconds: 60, window: "1m" })
      expect(limiter.hit(name, "k2").allowed).toBe(true)
    }
    clock.advance(60_000)
    expect(limiter.hit("commands", "k1")).toMatchObject({ allowed: true, remaining: 59 })
  })

  test("keys idle for a window after theirs ended are forgotten, so memory follows the keys active now", () => {
    const clock = clockAt(0)
    const limiter = createRateLimiter(DEFAULT_LIMITS, clock)
    for (let i = 0; i < 20_000; i++) limiter.hit("agent", `node-${i}`)
    expect(limiter.size()).toBe(20_000)
    clock.advance(61_000)
    // A new window for node-0 starts in place; the others are kept one window more.
    expect(limiter.hit("agent", "node-0")).toMatchObject({ allowed: true, remaining: 1199 })
    expect(limiter.size()).toBe(20_000)
    clock.advance(60_000)
    limiter.hit("agent", "node-1")
    expect(limiter.size()).toBe(2)
    // A forgotten key's slot serves the next new key, counting from zero.
    expect(limiter.hit("agent", "fresh")).toMatchObject({ remaining: 1199 })
    expect(limiter.size()).toBe(3)
  })

  test("the 429 error carries which limit was hit and when to retry", () => {
    const clock = clockAt(Date.parse("2024-01-15T09:30:30Z"))
    const limiter = createRateLimiter({ ...DEFAULT_LIMITS, commands: { limit: 0, windowMs: 60_000 } }, clock)
    const error = rateLimited(limiter.hit("commands", "s"))
    expect(error.code).toBe("RATE_LIMIT_EXCEEDED")
    expect(error.message).toBe("Rate limit exceeded. Try again in 60 seconds.")
    expect(error.detail).toEqual({ retryAfter: 60, limit: 0, window: "1m", resetAt: "2024-01-15T09:31:30.000Z" })
    expect([windowLabel(30_000), windowLabel(250)]).toEqual(["30s", "250ms"])
  })
})
