// A job the control plane runs on a timer (the reachability sweep, incident watches, retention): one
// run at a time, a tick that finds the last still going skipped, and a failure logged, never thrown.
// A job that keeps failing the same way (the database away for a minute: every second, on every
// replica) is said once, again each REPEAT_MS while it lasts, and once more when it works again.
import { createLogger } from "../protocol/log.ts"

const log = createLogger("server")

/** How often a job that keeps failing with the same error is said again. */
const REPEAT_MS = 60_000

export interface Periodic {
  /** Runs the job now, unless a run is still going. */
  run(): Promise<void>
  stop(): void
}

/** Runs `job` every `ms`; a failure is logged as `failure` with its error. */
export function every(ms: number, failure: string, job: () => Promise<unknown>): Periodic {
  let running = false
  let failing: { message: string; count: number; saidAt: number } | null = null
  const run = async () => {
    if (running) return
    running = true
    try {
      await job()
      if (failing) log.warn(`${failure} before; it works again`, { failures: failing.count })
      failing = null
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      const now = performance.now()
      const count = (failing?.count ?? 0) + 1
      if (failing?.message === message && now - failing.saidAt < REPEAT_MS) failing.count = count
      else {
        log.error(failure, { error, ...(count > 1 ? { failures: count } : {}) })
        failing = { message, count, saidAt: now }
      }
    } finally {
      running = false
    }
  }
  const timer = setInterval(run, ms)
  return { run, stop: () => clearInterval(timer) }
}
