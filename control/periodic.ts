// A job the control plane runs on a timer (the reachability sweep, incident watches, retention): one
// run at a time, a tick that finds the last still going skipped, and a failure logged, never thrown.
// A job that keeps failing the same way (the database away for a minute: every second, on every
// replica) is said once, again each minute while it lasts, and once more when it works again
// (protocol/failure-log.ts).
import { failureLog } from "../protocol/failure-log.ts"
import { createLogger } from "../protocol/log.ts"

const log = createLogger("server")

export interface Periodic {
  /** Runs the job now, unless a run is still going. */
  run(): Promise<void>
  stop(): void
}

/** Runs `job` every `ms`; a failure is logged as `failure` with its error. */
export function every(ms: number, failure: string, job: () => Promise<unknown>): Periodic {
  let running = false
  const failures = failureLog(log, failure)
  const run = async () => {
    if (running) return
    running = true
    try {
      await job()
      failures.worked()
    } catch (error) {
      failures.failed(error)
    } finally {
      running = false
    }
  }
  const timer = setInterval(run, ms)
  return { run, stop: () => clearInterval(timer) }
}
