// Rate limits (seed 002): a fixed window per limit and key, counted in memory on the clock port, so
// tests can pass a window in milliseconds instead of waiting a minute. Keys say whom a limit counts:
// `api` per user or token, `agent` per node (20,000 agents must not share one budget), `login` and
// `enroll` (the two routes anyone may call without a credential) per source address, `sessions` per user, `commands` per session, `websocket` per connection. Routes
// declare which limits they take in control/api/route-permissions.ts; a WebSocket handler calls `hit`.
// With several control-plane replicas each counts its own share; the limits bound abuse, not billing.
import { ChimeraError } from "../errors.ts"
import type { Clock } from "../ports.ts"

export const LIMIT_NAMES = ["api", "agent", "login", "enroll", "sessions", "commands", "websocket", "chat"] as const
export type LimitName = (typeof LIMIT_NAMES)[number]

export interface LimitRule {
  limit: number
  windowMs: number
}
export type RateLimits = Record<LimitName, LimitRule>

const MINUTE = 60_000

/** Seed 002's numbers, plus the two it leaves open: agents (per node) and login attempts (per address). */
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
}

export interface LimitDecision {
  allowed: boolean
  limit: number
  remaining: number
  resetAt: Date
  retryAfterSeconds: number
  window: string
}

/** "1m", "30s", "250ms": the window as seed 002 writes it. */
export function windowLabel(ms: number): string {
  if (ms % MINUTE === 0) return `${ms / MINUTE}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

export function createRateLimiter(limits: RateLimits, clock: Clock) {
  const windows = new Map<string, { count: number; resetAtMs: number }>()
  const shortest = Math.min(...Object.values(limits).map((l) => l.windowMs))
  let sweptAt = 0

  // Forget windows that have ended, at most once per shortest window, so memory follows active keys.
  const sweep = (nowMs: number) => {
    if (nowMs - sweptAt < shortest) return
    sweptAt = nowMs
    for (const [key, w] of windows) if (w.resetAtMs <= nowMs) windows.delete(key)
  }

  return {
    limits,
    size: () => windows.size,
    hit(name: LimitName, key: string): LimitDecision {
      const rule = limits[name]
      const nowMs = clock.now().getTime()
      sweep(nowMs)
      const id = `${name}\u0000${key}`
      let w = windows.get(id)
      if (!w || w.resetAtMs <= nowMs) {
        w = { count: 0, resetAtMs: nowMs + rule.windowMs }
        windows.set(id, w)
      }
      w.count++
      const allowed = w.count <= rule.limit
      return {
        allowed,
        limit: rule.limit,
        remaining: Math.max(0, rule.limit - w.count),
        resetAt: new Date(w.resetAtMs),
        retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((w.resetAtMs - nowMs) / 1000)),
        window: windowLabel(rule.windowMs),
      }
    },
  }
}

export type RateLimiter = ReturnType<typeof createRateLimiter>

/** The 429 (seed 002's body is built from this error's detail in the API's one onError). */
export function rateLimited(d: LimitDecision): ChimeraError {
  return new ChimeraError("RATE_LIMIT_EXCEEDED", `Rate limit exceeded. Try again in ${d.retryAfterSeconds} seconds.`, {
    retryAfter: d.retryAfterSeconds,
    limit: d.limit,
    window: d.window,
    resetAt: d.resetAt.toISOString(),
  })
}
