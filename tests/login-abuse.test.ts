// Logins under an outside attack, against a real control plane with clients bound to their own loopback
// source addresses. Per username: a few failures are free, then lockouts that double, no password
// checked while locked, unknown usernames treated the same, a success clearing it. A distributed flood
// of wrong passwords from a hundred addresses, enough to fill the password-check queue, cannot keep a
// real user at a new address from logging in. And a session refreshed again and again still ends at
// its absolute lifetime.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { DEFAULT_BACKOFF } from "../control/domain/auth/login-backoff.ts"
import { DEFAULT_CHECK_LIMITS } from "../control/domain/auth/password-queue.ts"
import { DEFAULT_LIMITS } from "../control/domain/auth/rate-limiter.ts"
import { addUser, call, PASSWORD } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess } from "./support/control-plane.ts"
import { type AddressClaim, claimAddresses } from "./support/loopback.ts"
import { requestFrom } from "./support/source-address.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

let addresses: AddressClaim[] = []
const address = (i: number) => addresses[i]?.address ?? "127.0.0.1"
beforeAll(() => {
  addresses = claimAddresses(110)
})
afterAll(() => {
  for (const a of addresses) a.release()
})

const LOGIN = "/api/auth/login"

describe("failed logins per username", () => {
  test("200 wrong passwords from 20 addresses: five are checked, the rest are 429s that say when; unknown names alike", async () => {
    const clock = manualClock(Date.parse("2025-04-01T08:00:00Z"))
    // The per-address login limit as configured (10 a minute): each of the 20 addresses stays within it.
    await using cp = await startInProcess({ clock, trust: { rateLimits: DEFAULT_LIMITS } })
    await addUser(cp, "frank", "operator")

    // Each flood from addresses of its own, so neither meets the other's per-address limit.
    const flood = async (username: string, first = 0) => {
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          requestFrom(address(first + (i % 20)), cp.url, LOGIN, { body: { username, password: `guess-${i}` } }),
        ),
      )
      return answers
    }
    const known = await flood("frank")
    const unknown = await flood("ghost", 50)
    for (const answers of [known, unknown]) {
      expect(answers.filter((a) => a.status === 401)).toHaveLength(DEFAULT_BACKOFF.freeFailures)
      const locked = answers.filter((a) => a.status === 429)
      expect(locked).toHaveLength(200 - DEFAULT_BACKOFF.freeFailures)
      for (const a of locked) {
        expect(Number(a.headers["retry-after"])).toBeGreaterThan(0)
        expect(a.json().message).toMatch(/too many failed logins for this username; try again in \d+ seconds/)
      }
    }
    // The answers do not tell a known username from an unknown one.
    const shape = (answers: typeof known) => answers.map((a) => `${a.status} ${a.json().message ?? a.json().error}`)
    expect(shape(known).sort()).toEqual(shape(unknown).sort())

    // Locked: the right password is not even checked.
    const right = () => requestFrom(address(80), cp.url, LOGIN, { body: { username: "frank", password: PASSWORD } })
    expect((await right()).status).toBe(429)
    clock.advance(DEFAULT_BACKOFF.baseLockMs + 1000)
    expect((await right()).status).toBe(200)

    // A success clears the count: five more failures are free again, the sixth is locked.
    const wrong = (i: number) =>
      requestFrom(address(90 + i), cp.url, LOGIN, { body: { username: "frank", password: "still wrong" } })
    for (let i = 0; i < DEFAULT_BACKOFF.freeFailures; i++) expect((await wrong(i)).status).toBe(401)
    expect((await wrong(9)).status).toBe(429)
  })

  test("each lockout after the free failures is twice the last", async () => {
    const clock = manualClock(Date.parse("2025-04-01T08:00:00Z"))
    await using cp = await startInProcess({ clock })
    await addUser(cp, "gina", "viewer")
    const attempt = (password: string) => call(cp, null, "POST", LOGIN, { username: "gina", password })
    for (let i = 0; i < DEFAULT_BACKOFF.freeFailures; i++) expect((await attempt("wrong password")).status).toBe(401)
    const base = DEFAULT_BACKOFF.baseLockMs
    expect((await attempt(PASSWORD)).status).toBe(429)
    clock.advance(base + 1)
    // The lockout's end lets one attempt through; failing it locks for twice as long.
    expect((await attempt("wrong password")).status).toBe(401)
    clock.advance(base + 1)
    const second = await attempt(PASSWORD)
    expect(second.status).toBe(429)
    expect(Number(second.headers.get("retry-after"))).toBe(Math.ceil(base / 1000))
    clock.advance(base)
    expect((await attempt(PASSWORD)).status).toBe(200)
  })
})

/**
 * Three wrong passwords in flight from each address, each for another made-up username so no lockout
 * spares the check queue: 300 checks asked for from 100 addresses, more than the queue's 256 places.
 */
function sprayFrom(url: string, sources: string[], inFlight = 3) {
  let running = true
  const answers = new Map<string, number>()
  let sprayed = 0
  const flooder = async (source: string) => {
    while (running) {
      const res = await requestFrom(source, url, LOGIN, {
        body: { username: `spray${sprayed++}`, password: "not the password" },
      }).catch(() => null)
      if (!res) continue
      const key = res.status === 429 ? `429 ${res.json().error}` : String(res.status)
      answers.set(key, (answers.get(key) ?? 0) + 1)
      // A refused flooder comes back at once in a real attack; a pause keeps this test's own client
      // from taking the cores the control plane needs.
      if (res.status === 429) await Bun.sleep(200)
    }
  }
  const loops = Array.from({ length: sources.length * inFlight }, (_, i) => flooder(sources[i % sources.length]!))
  return {
    answers,
    async stop() {
      running = false
      await Promise.all(loops)
    },
  }
}
const FULL = "429 too many password checks are waiting; try again in a few seconds"

describe("a distributed login flood", () => {
  test("100 addresses guess one password, then fill the check queue with wrong ones; real logins from new addresses are all served", async () => {
    // A check queue of its own (the default bounds), so the checks this flood leaves queued when the
    // test ends do not hold up the next test's logins in this process.
    const cp = await startInProcess({ trust: { passwordChecks: DEFAULT_CHECK_LIMITS } })
    await addUser(cp, "hana", "operator")
    const FLOODERS = 100
    // First every address guesses at one account: five guesses are checked, then it is locked.
    const guesses = await Promise.all(
      Array.from({ length: FLOODERS }, (_, i) =>
        requestFrom(address(i), cp.url, LOGIN, { body: { username: "root", password: `guess-${i}` } }),
      ),
    )
    expect(guesses.filter((g) => g.status === 401)).toHaveLength(DEFAULT_BACKOFF.freeFailures)

    // Then each address keeps three wrong passwords in flight.
    const flood = sprayFrom(
      cp.url,
      Array.from({ length: FLOODERS }, (_, i) => address(i)),
    )
    const answers = flood.answers
    try {
      await waitFor(
        "the password-check queue to overflow",
        async () => Object.fromEntries(answers),
        (seen) => (seen[FULL] ?? 0) > 0,
        90_000,
      )
      const real = []
      for (let i = 0; i < 8; i++) {
        const res = await requestFrom(address(FLOODERS + i), cp.url, LOGIN, {
          body: { username: "hana", password: PASSWORD },
        })
        real.push(res.status === 200 ? 200 : `${res.status} ${res.text}`)
      }
      expect(real).toEqual(Array(8).fill(200))
      // The queue was still overflowing while they were served.
      const before = answers.get(FULL) ?? 0
      await waitFor(
        "the flood to be refused again",
        async () => answers.get(FULL) ?? 0,
        (n) => n > before,
        90_000,
      )
    } finally {
      // Stopping the control plane ends the checks still queued; each flooder's request then fails.
      await cp.stop()
      await flood.stop()
    }
  })

  test("a flood from 100 fresh addresses fills the queue at once; a user returning to an address they logged in from is served", async () => {
    const cp = await startInProcess({ trust: { passwordChecks: DEFAULT_CHECK_LIMITS } })
    await addUser(cp, "jun", "operator")
    const home = address(105)
    const loginFromHome = () => requestFrom(home, cp.url, LOGIN, { body: { username: "jun", password: PASSWORD } })
    expect((await loginFromHome()).status).toBe(200)
    const flood = sprayFrom(
      cp.url,
      Array.from({ length: 100 }, (_, i) => address(i)),
    )
    try {
      await waitFor(
        "the password-check queue to overflow",
        async () => Object.fromEntries(flood.answers),
        (seen) => (seen[FULL] ?? 0) > 0,
        90_000,
      )
      const real = []
      for (let i = 0; i < 4; i++) {
        const res = await loginFromHome()
        real.push(res.status === 200 ? 200 : `${res.status} ${res.text}`)
      }
      expect(real).toEqual(Array(4).fill(200))
    } finally {
      await cp.stop()
      await flood.stop()
    }
  })
})

describe("absolute session lifetime", () => {
  test("refreshing again and again ends at auth.session_max_seconds; then refresh is a 401 that says to log in", async () => {
    const start = Date.parse("2025-04-01T08:00:00Z")
    const clock = manualClock(start)
    await using cp = await startInProcess({ clock, trust: { jwtTtlSeconds: 3600, sessionMaxSeconds: 7200 } })
    await addUser(cp, "ivan", "viewer")
    const first = (await (await call(cp, null, "POST", LOGIN, { username: "ivan", password: PASSWORD })).json()) as {
      token: string
    }
    let token = first.token
    const refresh = async () => {
      const res = await call(cp, token, "POST", "/api/auth/refresh")
      return { status: res.status, body: (await res.json()) as { token: string; expiresAt: string; error?: string } }
    }
    clock.advance(50 * 60_000)
    const second = await refresh()
    expect(second.status).toBe(200)
    expect(second.body.expiresAt).toBe(new Date(start + 110 * 60_000).toISOString())
    token = second.body.token
    clock.advance(50 * 60_000)
    const third = await refresh()
    expect(third.status).toBe(200)
    // The last token of the chain ends with the login, not an hour after the refresh.
    expect(third.body.expiresAt).toBe(new Date(start + 120 * 60_000).toISOString())
    token = third.body.token
    clock.advance(19 * 60_000)
    const fourth = await refresh()
    expect(fourth.status).toBe(200)
    expect(fourth.body.expiresAt).toBe(new Date(start + 120 * 60_000).toISOString())
    token = fourth.body.token
    clock.advance(60_000 + 1000)
    const over = await refresh()
    expect(over.status).toBe(401)
    expect(over.body.error).toContain("log in again")
    // A new login starts a new chain.
    expect((await call(cp, null, "POST", LOGIN, { username: "ivan", password: PASSWORD })).status).toBe(200)
  })

  test("the default is 12 hours, and it is configurable", async () => {
    const { loadConfig } = await import("../control/config.ts")
    const { trustSettings } = await import("../control/trust.ts")
    expect(trustSettings(loadConfig({ env: {} })).sessionMaxSeconds).toBe(43_200)
    const config = loadConfig({ env: { CHIMERA_AUTH_SESSION_MAX_SECONDS: "3600" } })
    expect(trustSettings(config).sessionMaxSeconds).toBe(3600)
    expect(() => loadConfig({ env: { CHIMERA_AUTH_SESSION_MAX_SECONDS: "5" } })).toThrow("auth.session_max_seconds")
  })
})
