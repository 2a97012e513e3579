// How failed logins slow down whoever makes them. Per username: the first few failures are free, then
// each further one locks that username out for twice as long as the last (30 s, 1 min, 2 min, … up to
// 15 min), and while it is locked no password is checked at all, right or wrong; a successful login
// clears it. Attempts still being checked count against the free ones, so a burst from many addresses
// reaches argon2 at most `freeFailures` times. Unknown usernames are treated exactly like known ones,
// so the answers never tell which exist. Per source address, its *standing* (password-queue.ts): an
// address whose last attempt was a successful login is *trusted* and its checks go first; one that
// failed lately (a wrong password, or an attempt on a locked username) is *suspect* and its checks wait
// behind everyone else's; any other is *clean*.
//
// An attacker who knows a username can keep it locked; that is the price of not letting them guess
// its password from many addresses. API tokens and sessions already issued keep working.
//
// Replicas on one database share each username's failures and lock (`SharedFailures`): a failure
// through any replica counts on all, so N replicas do not give N times the guesses. Attempts in
// flight and the addresses' standing stay per process: they order each process's own password checks.
import { ChimeraError } from "../errors.ts"
import type { Clock } from "../ports.ts"
import type { Standing } from "./password-queue.ts"

export interface BackoffRules {
  /** Failures before the first lockout. */
  freeFailures: number
  /** The first lockout; each further failure doubles it. */
  baseLockMs: number
  maxLockMs: number
  /** A username or address with no failure for this long is forgotten. */
  forgetMs: number
  /** Usernames and addresses tracked at once; the oldest are forgotten first. */
  maxEntries: number
}

export const DEFAULT_BACKOFF: BackoffRules = {
  freeFailures: 5,
  baseLockMs: 30_000,
  maxLockMs: 15 * 60_000,
  forgetMs: 60 * 60_000,
  maxEntries: 50_000,
}

/** How long an address whose last attempt logged in keeps going first. */
const TRUST_MS = 30 * 86_400_000

/** A username's failed logins as all replicas recorded them. */
export interface FailureRecord {
  failures: number
  lockedUntilMs: number
  lastMs: number
}

/** Failed logins per username kept where every replica sees them (the database). */
export interface SharedFailures {
  read(username: string): Promise<FailureRecord | null>
  /** Adds a failure at `nowMs` (a record last touched before `forgetBeforeMs` counts from 1 again). */
  add(username: string, nowMs: number, forgetBeforeMs: number): Promise<FailureRecord>
  /** Keeps the later of the stored lock end and `untilMs`. */
  lock(username: string, untilMs: number): Promise<void>
  clear(username: string): Promise<void>
}

interface UserState {
  failures: number
  pending: number
  lockedUntilMs: number
  lastMs: number
}

/** A bounded map whose oldest entries go first: touching an entry makes it the newest. */
function _touch<V>(map: Map<string, V>, key: string, value: V, max: number) {
  map.delete(key)
  map.set(key, value)
  if (map.size > max) map.delete(map.keys().next().value as string)
}

export function createLoginBackoff(
  clock: Clock,
  rules: BackoffRules = DEFAULT_BACKOFF,
  shared: SharedFailures | null = null,
) {
  const users = new Map<string, UserState>()
  const suspects = new Map<string, number>()
  const trusted = new Map<string, number>()
  const distrust = (source: string | null, nowMs: number) => {
    if (source === null) return
    trusted.delete(source)
    _touch(suspects, source, nowMs, rules.maxEntries)
  }

  const stateOf = (username: string, nowMs: number): UserState => {
    const s = users.get(username)
    if (s && (s.pending > 0 || nowMs - s.lastMs < rules.forgetMs)) return s
    return { failures: 0, pending: 0, lockedUntilMs: 0, lastMs: nowMs }
  }

  const lockEnd = (failures: number, nowMs: number) => {
    const over = failures - rules.freeFailures
    return over >= 0 ? nowMs + Math.min(rules.maxLockMs, rules.baseLockMs * 2 ** Math.min(over, 30)) : 0
  }
  /**
   * What all replicas recorded replaces this process's own count: every failure is stored before its
   * answer, so the shared record is never behind, and a login through another replica cleared it.
   */
  const adopt = (s: UserState, record: FailureRecord | null, nowMs: number) => {
    const live = record !== null && nowMs - record.lastMs < rules.forgetMs
    s.failures = live ? record.failures : 0
    s.lockedUntilMs = live ? record.lockedUntilMs : 0
    if (live) s.lastMs = Math.max(s.lastMs, record.lastMs)
  }

  return {
    /**
     * Reserves an attempt for `username` (as shown: shownUsername) or throws its 429. Each reservation
     * must end in `failed`, `succeeded` or `abandoned`.
     */
    async begin(username: string, source: string | null): Promise<void> {
      const record = shared ? await shared.read(username) : null
      const nowMs = clock.now().getTime()
      const s = stateOf(username, nowMs)
      if (shared) adopt(s, record, nowMs)
      const locked = s.lockedUntilMs > nowMs
      // Past the free failures, each lockout's end lets one attempt through.
      const allowance = s.failures < rules.freeFailures ? rules.freeFailures - s.failures : locked ? 0 : 1
      if (s.pending >= allowance) {
        distrust(source, nowMs)
        const retryAfter = Math.max(1, Math.ceil((s.lockedUntilMs - nowMs) / 1000))
        throw new ChimeraError(
          "RATE_LIMIT_EXCEEDED",
          `too many failed logins for this username; try again in ${retryAfter} seconds`,
          {
            retryAfter,
            limit: rules.freeFailures,
            window: "backoff",
            resetAt: new Date(nowMs + retryAfter * 1000).toISOString(),
          },
        )
      }
      s.pending++
      _touch(users, username, s, rules.maxEntries)
    },
    async failed(username: string, source: string | null): Promise<void> {
      const nowMs = clock.now().getTime()
      const s = stateOf(username, nowMs)
      s.pending = Math.max(0, s.pending - 1)
      s.failures++
      s.lastMs = nowMs
      _touch(users, username, s, rules.maxEntries)
      distrust(source, nowMs)
      if (shared) {
        const record = await shared.add(username, nowMs, nowMs - rules.forgetMs)
        s.failures = Math.max(s.failures, record.failures)
      }
      const until = lockEnd(s.failures, nowMs)
      if (until > s.lockedUntilMs) {
        s.lockedUntilMs = until
        await shared?.lock(username, until)
      }
    },
    async succeeded(username: string, source: string | null): Promise<void> {
      users.delete(username)
      await shared?.clear(username)
      if (source === null) return
      suspects.delete(source)
      _touch(trusted, source, clock.now().getTime(), rules.maxEntries)
    },
    /** The attempt ended without a verdict on the password (the check queue refused it). */
    abandoned(username: string): void {
      const s = users.get(username)
      if (s) s.pending = Math.max(0, s.pending - 1)
    },
    /** Trusted: its last attempt logged in; suspect: it failed within `forgetMs`; else clean. */
    standing(source: string | null): Standing {
      if (source === null) return "clean"
      const nowMs = clock.now().getTime()
      const failedAt = suspects.get(source)
      if (failedAt !== undefined && nowMs - failedAt < rules.forgetMs) return "suspect"
      const loggedInAt = trusted.get(source)
      return loggedInAt !== undefined && nowMs - loggedInAt < TRUST_MS ? "trusted" : "clean"
    },
  }
}

export type LoginBackoff = ReturnType<typeof createLoginBackoff>
