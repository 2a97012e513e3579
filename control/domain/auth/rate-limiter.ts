// Rate limits: a fixed window per limit and key, counted in memory on the clock port, so
// tests can pass a window in milliseconds instead of waiting a minute. Keys say whom a limit counts:
// `api` per user or token, `agent` per node (20,000 agents must not share one budget), `login` and
// `enroll` (the two routes anyone may call without a credential) per source address, `sessions` per
// user, `commands` per session, `websocket` per connection, `records` (audit rows a request writes, a
// cost of many) per user. Routes declare which limits they take in control/api/route-permissions.ts;
// a WebSocket handler calls `hit`.
// With several control-plane replicas each counts its own share; the limits bound abuse, not billing.
import { ChimeraError } from "../errors.ts"
import type { Clock } from "../ports.ts"
import { Slots } from "../slots.ts"

export const LIMIT_NAMES = [
  "api",
  "agent",
  "login",
  "enroll",
  "sessions",
  "commands",
  "websocket",
  "chat",
  "records",
  "rotations",
] as const
export type LimitName = (typeof LIMIT_NAMES)[number]

export interface LimitRule {
  limit: number
  windowMs: number
}
export type RateLimits = Record<LimitName, LimitRule>

const MINUTE = 60_000

/** Each per one-minute window; agents have a budget per node, apart from users', and logins one per address. */
export const DEFAULT_LIMITS: RateLimits = {
  sessions: { limit: 10, windowMs: MINUTE },
  commands: { limit: 60, windowMs: MINUTE },
  websocket: { limit: 100, windowMs: MINUTE },
  api: { limit: 300, windowMs: MINUTE },
  agent: { limit: 1200, windowMs: MINUTE },
  login: { limit: 10, windowMs: MINUTE },
  // A node enrols once; retries after a lost answer are a handful. Anything more from one address is a flood.
  enroll: { limit: 20, windowMs: MINUTE },
  // Each AI chat turn costs a model call: per user, far below what a person types.
  chat: { limit: 30, windowMs: MINUTE },
  // Audit rows a user's CLI reports for operations it ran over SSH (one per target), per user.
  records: { limit: 2000, windowMs: MINUTE },
  // Rotated credentials a node is handed, per node and hour: each is an audit row kept for good, and
  // rotation stays due until the new credential is used, which a compromised node never does. An
  // agent needs one per rotation, a few more when answers are lost. Not configured: an hour's window.
  rotations: { limit: 10, windowMs: 60 * MINUTE },
}

export interface LimitDecision {
  allowed: boolean
  limit: number
  remaining: number
  resetAt: Date
  retryAfterSeconds: number
  window: string
}

/** "1m", "30s", "250ms": the window as the 429 body's `window` field writes it. */
export function windowLabel(ms: number): string {
  if (ms % MINUTE === 0) return `${ms / MINUTE}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/**
 * One limit's windows: each key has a slot, and each slot its count and its window's end in typed
 * arrays, so that a request reaches no object of its key's own (with 20,000 agents, one per node,
 * made again each minute) and an ended window restarts in place.
 */
function windowTable() {
  const slots = new Slots()
  let counts = new Uint32Array(64)
  let ends = new Float64Array(64)
  return {
    slots,
    /** The key's slot, made (its count 0, its window ended) if it has none. */
    slotOf(key: string): number {
      const known = slots.get(key)
      if (known !== undefined) return known
      const slot = slots.add(key)
      if (slot >= counts.length) {
        const moreCounts = new Uint32Array(counts.length * 2)
        moreCounts.set(counts)
        counts = moreCounts
        const moreEnds = new Float64Array(ends.length * 2)
        moreEnds.set(ends)
        ends = moreEnds
      }
      counts[slot] = 0
      ends[slot] = 0
      return slot
    },
    get counts() {
      return counts
    },
    get ends() {
      return ends
    },
    /** Forgets the keys whose windows ended before `beforeMs`. */
    forget(beforeMs: number) {
      for (const [key, slot] of slots.entries()) if ((ends[slot] as number) <= beforeMs) slots.delete(key)
    },
  }
}

export function createRateLimiter(limits: RateLimits, clock: Clock) {
  const tables = new Map(LIMIT_NAMES.map((name) => [name, windowTable()]))
  const labels = new Map(LIMIT_NAMES.map((name) => [name, windowLabel(limits[name].windowMs)]))
  const shortest = Math.min(...Object.values(limits).map((l) => l.windowMs))
  let sweptAt = 0

  // Forget keys idle for a whole window after their last one ended, at most once per shortest window,
  // so memory follows the keys active now and a key in steady use keeps its slot.
  const sweep = (nowMs: number) => {
    if (nowMs - sweptAt < shortest) return
    sweptAt = nowMs
    for (const [name, table] of tables) table.forget(nowMs - limits[name].windowMs)
  }

  return {
    limits,
    size: () => {
      let n = 0
      for (const table of tables.values()) n += table.slots.size
      return n
    },
    /** Counts `cost` against the key's window (1: a request; more: what one request writes). */
    hit(name: LimitName, key: string, cost = 1): LimitDecision {
      const rule = limits[name]
      const nowMs = clock.now().getTime()
      sweep(nowMs)
      const table = tables.get(name) as ReturnType<typeof windowTable>
      const slot = table.slotOf(key)
      const { counts, ends } = table
      if ((ends[slot] as number) <= nowMs) {
        counts[slot] = 0
        ends[slot] = nowMs + rule.windowMs
      }
      const count = (counts[slot] as number) + cost
      const resetAtMs = ends[slot] as number
      const allowed = count <= rule.limit
      // A refused request counts (floods stay refused); a refused cost of many is not spent.
      counts[slot] = allowed || cost === 1 ? count : (counts[slot] as number)
      return {
        allowed,
        limit: rule.limit,
        remaining: Math.max(0, rule.limit - count),
        resetAt: new Date(resetAtMs),
        retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((resetAtMs - nowMs) / 1000)),
        window: labels.get(name) as string,
      }
    },
  }
}

export type RateLimiter = ReturnType<typeof createRateLimiter>

/** The 429: the API's one onError builds its body (which limit, when to retry) from this error's detail. */
export function rateLimited(d: LimitDecision): ChimeraError {
  return new ChimeraError("RATE_LIMIT_EXCEEDED", `Rate limit exceeded. Try again in ${d.retryAfterSeconds} seconds.`, {
    retryAfter: d.retryAfterSeconds,
    limit: d.limit,
    window: d.window,
    resetAt: d.resetAt.toISOString(),
  })
}
