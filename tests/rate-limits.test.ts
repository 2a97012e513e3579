// Exceeding a limit gives 429 with X-RateLimit-* headers and a body saying which limit and when to retry,
// and the limit resets when its window passes. The clock is the control plane's clock port, so the
// one-minute windows pass at once.
import { describe, expect, test } from "bun:test"
import { DEFAULT_LIMITS } from "../control/domain/auth/rate-limiter.ts"
import { addUser, call, enrollNode, heartbeatBody, login } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess } from "./support/control-plane.ts"
import { rateLimitedBody } from "./support/rate-limit.ts"

function expect429(res: Response, limit: number, clockNow: number) {
  expect(res.status).toBe(429)
  expect(res.headers.get("x-ratelimit-limit")).toBe(String(limit))
  expect(res.headers.get("x-ratelimit-remaining")).toBe("0")
  const reset = Number(res.headers.get("x-ratelimit-reset"))
  expect(reset).toBeGreaterThan(clockNow / 1000)
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0)
  return res.json() as Promise<Record<string, unknown>>
}

describe("rate limits", () => {
  test(`API: ${DEFAULT_LIMITS.api.limit} requests a minute per user, then a 429 saying when to retry, then reset`, async () => {
    const clock = manualClock(Date.parse("2025-01-15T09:30:00Z"))
    await using cp = await startInProcess({ clock, trust: { rateLimits: DEFAULT_LIMITS } })
    const { limit } = DEFAULT_LIMITS.api
    for (let i = 1; i <= limit; i++) {
      const res = await call(cp, cp.adminToken, "GET", "/api/nodes")
      expect(res.status).toBe(200)
      expect(res.headers.get("x-ratelimit-limit")).toBe(String(limit))
      expect(res.headers.get("x-ratelimit-remaining")).toBe(String(limit - i))
    }
    const body = await expect429(await call(cp, cp.adminToken, "GET", "/api/nodes"), limit, clock.now().getTime())
    expect(body).toEqual(rateLimitedBody(limit, "2025-01-15T09:31:00.000Z"))
    clock.advance(30_000)
    const later = await expect429(await call(cp, cp.adminToken, "GET", "/api/nodes"), limit, clock.now().getTime())
    expect(later.retryAfter).toBe(30)
    clock.advance(30_000)
    const again = await call(cp, cp.adminToken, "GET", "/api/nodes")
    expect(again.status).toBe(200)
    expect(again.headers.get("x-ratelimit-remaining")).toBe(String(limit - 1))
  })

  test("users and tokens each have their own budget", async () => {
    const clock = manualClock(Date.parse("2025-01-15T09:30:00Z"))
    const limits = { ...DEFAULT_LIMITS, api: { limit: 3, windowMs: 60_000 } }
    await using cp = await startInProcess({ clock, trust: { rateLimits: limits } })
    await addUser(cp, "olivia", "viewer")
    const olivia = await login(cp, "olivia")
    for (let i = 0; i < 3; i++) expect((await call(cp, olivia, "GET", "/api/nodes")).status).toBe(200)
    expect((await call(cp, olivia, "GET", "/api/nodes")).status).toBe(429)
    expect((await call(cp, cp.adminToken, "GET", "/api/nodes")).status).toBe(200)
  })

  test(`login: ${DEFAULT_LIMITS.login.limit} attempts a minute per source address, then 429, then reset`, async () => {
    const clock = manualClock(Date.parse("2025-01-15T09:30:00Z"))
    await using cp = await startInProcess({ clock, trust: { rateLimits: DEFAULT_LIMITS } })
    await addUser(cp, "paul", "viewer")
    const attempt = (password: string, username = "paul") =>
      call(cp, null, "POST", "/api/auth/login", { username, password })
    // Each guess at another username: one username's own backoff (tests/login-abuse.test.ts) is not what counts here.
    for (let i = 0; i < DEFAULT_LIMITS.login.limit; i++)
      expect((await attempt(`guess number ${i}`, `user${i}`)).status).toBe(401)
    const body = await expect429(
      await attempt("correct horse battery staple"),
      DEFAULT_LIMITS.login.limit,
      clock.now().getTime(),
    )
    expect(body).toMatchObject({ error: "RATE_LIMIT_EXCEEDED", window: "1m", limit: DEFAULT_LIMITS.login.limit })
    clock.advance(60_000)
    expect((await attempt("correct horse battery staple")).status).toBe(200)
  })

  test("agents: a higher budget per node, separate from users' and from other nodes'", async () => {
    const clock = manualClock(Date.parse("2025-01-15T09:30:00Z"))
    const limits = { ...DEFAULT_LIMITS, agent: { limit: 20, windowMs: 60_000 } }
    await using cp = await startInProcess({ clock, trust: { rateLimits: limits } })
    const a = await enrollNode(cp, "a")
    const b = await enrollNode(cp, "b")
    const beat = (cred: string, id: string) => call(cp, cred, "POST", `/api/agent/${id}/heartbeat`, heartbeatBody(id))
    for (let i = 0; i < 20; i++) expect((await beat(a, "a")).status).toBe(200)
    await expect429(await beat(a, "a"), 20, clock.now().getTime())
    expect((await beat(b, "b")).status).toBe(200)
    expect((await call(cp, cp.adminToken, "GET", "/api/nodes")).status).toBe(200)
    clock.advance(60_000)
    expect((await beat(a, "a")).status).toBe(200)
  })

  test("failed authentication spends the source address's budget", async () => {
    const clock = manualClock(Date.parse("2025-01-15T09:30:00Z"))
    const limits = { ...DEFAULT_LIMITS, api: { limit: 5, windowMs: 60_000 } }
    await using cp = await startInProcess({ clock, trust: { rateLimits: limits } })
    for (let i = 0; i < 5; i++) expect((await call(cp, "chm_api_guess", "GET", "/api/nodes")).status).toBe(401)
    expect((await call(cp, "chm_api_guess", "GET", "/api/nodes")).status).toBe(429)
  })
})
