// Exponential backoff with jitter, shared by every retry loop in the agent: the report sender and the
// command poll (full jitter, so a fleet that lost its control plane does not come back in lockstep) and
// failed heals (equal jitter, so a retry never fires at once: a broken closure must not become a tight
// activation loop). Pure apart from the random source, which tests replace.

export type Jitter = "full" | "equal" | "none"

export interface BackoffOptions {
  /** The first delay before jitter, in ms. */
  initialMs: number
  /** The delay never grows past this, in ms. */
  maxMs: number
  factor?: number
  jitter?: Jitter
  random?: () => number
}

export interface Backoff {
  /** The delay before the next attempt; each call counts one more failure. */
  next(): number
  /** Back to the first delay (after a success, or when what is retried changes). */
  reset(): void
  /** Failures counted since the last reset. */
  readonly failures: number
}

export function createBackoff(opts: BackoffOptions): Backoff {
  const factor = opts.factor ?? 2
  const jitter = opts.jitter ?? "full"
  const random = opts.random ?? Math.random
  let failures = 0
  return {
    next() {
      const ceiling = Math.min(opts.maxMs, opts.initialMs * factor ** failures)
      failures++
      return Math.round(_jittered(ceiling, jitter, random()))
    },
    reset() {
      failures = 0
    },
    get failures() {
      return failures
    },
  }
}

function _jittered(ceiling: number, jitter: Jitter, r: number): number {
  if (jitter === "none") return ceiling
  if (jitter === "full") return ceiling * r
  return ceiling / 2 + (ceiling / 2) * r
}

/**
 * A period spread by ±`spread` (a fraction): 20,000 agents started together, or brought back together
 * by a control plane's restart, drift apart instead of arriving in the same millisecond every time.
 */
export function spreadPeriod(ms: number, spread = 0.2, random: () => number = Math.random): number {
  return Math.round(ms * (1 - spread + 2 * spread * random()))
}

/** Resolves after `ms`, or early (without error) when `signal` aborts; keeps loops stoppable. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener("abort", done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener("abort", done, { once: true })
  })
}
