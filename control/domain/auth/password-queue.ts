// The queue in front of argon2. A password check costs ~19 MiB and ~30 ms of a core, so only a few run
// at once and the rest wait, up to a bound past which they are refused at once (429) rather than
// queueing without end. A plain first-come queue lets anyone with enough addresses fill it and push
// every real login out; these rules keep it fair instead:
// - each source address holds at most `perSource` waiting checks, so one address cannot fill it;
// - checks wait in three lanes, served in order: *trusted* sources (whose last login attempt was a
//   success), then *clean* ones (no recent failure; one waiting check each, a second waits as suspect),
//   then *suspect* ones (a failed login lately), so a flood that keeps failing is served last;
// - when the queue is full, a check takes the place of the newest one in a lane below its own, which
//   is refused: a distributed flood of wrong passwords cannot keep a returning user, nor for long a new
//   address, out.
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

/** How a source's recent login attempts went (login-backoff.ts), which decides its lane. */
export type Standing = "trusted" | "clean" | "suspect"
const LANES: Standing[] = ["trusted", "clean", "suspect"]

/** Who asks for a check: the source address and its standing. */
export interface CheckCaller {
  source: string | null
  standing: Standing
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
  const lanes: Record<Standing, Waiting[]> = { trusted: [], clean: [], suspect: [] }
  const perSource = new Map<string, number>()
  const waiting = () => lanes.trusted.length + lanes.clean.length + lanes.suspect.length

  const count = (source: string | null, by: number) => {
    if (source === null) return
    const n = (perSource.get(source) ?? 0) + by
    if (n <= 0) perSource.delete(source)
    else perSource.set(source, n)
  }
  const next = () => lanes.trusted.shift() ?? lanes.clean.shift() ?? lanes.suspect.shift()

  /** Admits a waiting check, or throws its 429; may refuse a lower lane's newest check to make room. */
  function enqueue(caller: CheckCaller): Promise<void> {
    const { source } = caller
    let lane = caller.standing
    if (source !== null) {
      const held = perSource.get(source) ?? 0
      if (held >= limits.perSource) throw busySource()
      // A new address gets one place ahead of the suspects; a burst from it is no more than suspect.
      if (lane === "clean" && held > 0) lane = "suspect"
      if (waiting() >= limits.waiting) {
        const below = LANES.slice(LANES.indexOf(lane) + 1).reverse()
        const from = below.find((l) => lanes[l].length > 0)
        const evicted = from === undefined ? undefined : lanes[from].pop()
        if (!evicted) throw full()
        count(evicted.caller.source, -1)
        evicted.refuse(full())
      }
    }
    count(source, 1)
    return new Promise<void>((start, refuse) => lanes[lane].push({ caller, start, refuse }))
  }

  return {
    limits,
    waiting,
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
