// The queue in front of argon2. A password check costs ~19 MiB and ~30 ms of a core, so only a few run
// at once and the rest wait, up to a bound past which they are refused at once (429) rather than
// queueing without end. A plain first-come queue lets anyone with enough addresses fill it and push
// every real login out; three rules keep it fair instead:
// - each source address holds at most `perSource` waiting checks, so one address cannot fill it;
// - checks from a *suspect* source (one that failed a login lately) wait behind the others, so a
//   flood that keeps failing is served after whoever has not;
// - when the queue is full, a check from a clean source takes the place of the newest suspect one,
//   which is refused: a distributed flood of wrong passwords cannot keep a new address out.
// Checks with no source (an admin setting a password) are the control plane's own and bypass the caps.
import { ChimeraError } from "../errors.ts"

export interface CheckQueueLimits {
  /** Checks that run at once. */
  parallel: number
  /** Checks waiting, all sources together. */
  waiting: number
  /** Checks one source address may have waiting. */
  perSource: number
}

/** 256 waiting checks are about four seconds of work on two cores. */
export const DEFAULT_CHECK_LIMITS: CheckQueueLimits = { parallel: 2, waiting: 256, perSource: 4 }

/** Who asks for a check: the source address, and whether it failed a login lately. */
export interface CheckCaller {
  source: string | null
  suspect: boolean
}

interface Waiting {
  caller: CheckCaller
  start: () => void
  refuse: (error: ChimeraError) => void
}

const full = () =>
  new ChimeraError("RESOURCE_EXHAUSTED", "too many password checks are waiting; try again in a few seconds")
const busySource = () =>
  new ChimeraError(
    "RESOURCE_EXHAUSTED",
    "too many password checks from your address are waiting; wait for their answers before sending more",
  )

export function createCheckQueue(limits: CheckQueueLimits = DEFAULT_CHECK_LIMITS) {
  let running = 0
  const clean: Waiting[] = []
  const suspect: Waiting[] = []
  const perSource = new Map<string, number>()

  const count = (source: string | null, by: number) => {
    if (source === null) return
    const n = (perSource.get(source) ?? 0) + by
    if (n <= 0) perSource.delete(source)
    else perSource.set(source, n)
  }
  const next = () => clean.shift() ?? suspect.shift()

  /** Admits a waiting check, or throws its 429; may refuse a suspect one to make room. */
  function enqueue(caller: CheckCaller): Promise<void> {
    const { source } = caller
    if (source !== null) {
      if ((perSource.get(source) ?? 0) >= limits.perSource) throw busySource()
      if (clean.length + suspect.length >= limits.waiting) {
        const evicted = caller.suspect ? undefined : suspect.pop()
        if (!evicted) throw full()
        count(evicted.caller.source, -1)
        evicted.refuse(full())
      }
    }
    count(source, 1)
    return new Promise<void>((start, refuse) => (caller.suspect ? suspect : clean).push({ caller, start, refuse }))
  }

  return {
    limits,
    waiting: () => clean.length + suspect.length,
    async run<T>(caller: CheckCaller, work: () => Promise<T>): Promise<T> {
      // A finishing check hands its slot straight to the next in line, so the count never overshoots.
      if (running >= limits.parallel) await enqueue(caller)
      else running++
      try {
        return await work()
      } finally {
        const following = next()
        if (following) {
          count(following.caller.source, -1)
          following.start()
        } else running--
      }
    },
  }
}

export type CheckQueue = ReturnType<typeof createCheckQueue>
