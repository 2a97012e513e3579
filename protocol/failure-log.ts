// A failure that repeats the same way (the database away for a minute: a job every second, a worker's
// every look, every request) said once, again each REPEAT_MS with how many there were, and once more
// when it works again, instead of a line each time. Another error while it fails is said at once.
import type { Logger } from "./log.ts"

/** How often a failure that keeps coming with the same error is said again. */
export const REPEAT_MS = 60_000

export interface FailureLog {
  /** One more failure: said when it is new or its last saying is REPEAT_MS old, counted otherwise. */
  failed(error: unknown, fields?: Record<string, unknown>): void
  /** It worked: said once, with how many failures there were, if it was failing. */
  worked(): void
  /** Whether it is failing now (the last news was a failure). */
  readonly failing: boolean
}

/** Failures said as `failure` on `log`; `now` (ms, monotonic) for tests that cannot wait a minute. */
export function failureLog(log: Logger, failure: string, now = () => performance.now()): FailureLog {
  let failing: { message: string; count: number; saidAt: number } | null = null
  return {
    failed(error, fields) {
      const message = error instanceof Error ? error.message : String(error)
      const at = now()
      const count = (failing?.count ?? 0) + 1
      if (failing?.message === message && at - failing.saidAt < REPEAT_MS) failing.count = count
      else {
        log.error(failure, { ...fields, error, ...(count > 1 ? { failures: count } : {}) })
        failing = { message, count, saidAt: at }
      }
    },
    worked() {
      if (failing) log.warn(`recovered from: ${failure}`, { failures: failing.count })
      failing = null
    },
    get failing() {
      return failing !== null
    },
  }
}
