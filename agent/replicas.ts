// Which control-plane replica the agent talks to. Given several URLs (--control-url A,B), the agent
// sticks to one: every request (heartbeat, reports, long poll, command acks, enrolment, credential
// rotation) goes to the chosen replica, so the agent's view of the fleet never splits across two. A
// request that gets no answer (refused, reset, timed out) or a 5xx moves the choice to the next URL in
// the list, wrapping round; the failed request itself is not repeated here: its loop retries with its
// own backoff, which is what keeps a fleet whose replicas are all down from spinning. A failure seen
// on a replica the agent already left changes nothing, so two loops failing together on A move the
// agent to B once, not to B and back to A.
//
// The list's order is the operator's preference (the nearest replica first), or, with
// --spread-replicas, each node's own order drawn from its id (`spreadOrder`), so that a fleet given
// one list spreads over the replicas. Once moved off the first URL, the agent asks it every `failbackMs` (with
// jitter, so a fleet that moved together does not return in one burst) whether it is ready again
// (`GET /api/health`, public, answered 200 only when that replica can reach its store) and goes back
// when it is: without that, a rolling restart would gather every agent on the replica restarted last.
import { createHash } from "node:crypto"
import { createLogger, displayUrl } from "../protocol/log.ts"

const log = createLogger("replicas")

/** How often an agent moved off its first replica asks whether it is back (--failback-interval's default). */
export const DEFAULT_FAILBACK_SECONDS = 300
const PROBE_TIMEOUT_MS = 5_000

export interface Replicas {
  /** The replica to use now, with its position (hand the position back to `failed`). */
  current(): { url: string; index: number }
  /** A request to replica `index` got no answer or a 5xx: move on, if the agent is still on it. */
  failed(index: number, reason: string): void
  /** A request got an answer below 500: the next move is news again (logged as a warning). */
  answered(): void
  /** Stops asking the first replica whether it is back (the agent's shutdown). */
  close(): void
  /** All URLs, in the order given. */
  readonly urls: readonly string[]
}

export interface ReplicaOptions {
  /** How often to ask the first URL whether it is ready again once moved off it; 0: stay where moved. */
  failbackMs?: number
  /** Whether the replica at `url` (ending in "/") is ready: `GET url/api/health` answered 200. */
  ready?: (url: string) => Promise<boolean>
}

/** A replica is ready when its `/api/health` answers 200; a redirect is not followed. */
export async function replicaReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(new URL("api/health", url), {
      redirect: "manual",
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    })
    await res.body?.cancel()
    return res.status === 200
  } catch {
    return false
  }
}

/**
 * The replicas in this node's own order (--spread-replicas): by rendezvous hashing, each URL ranked by
 * a hash of the node id and the URL. A fleet given one list of N replicas starts about 1/N of its
 * nodes on each; a node's order never changes while its id and the list do not, so it always fails
 * back to the same replica; and a replica added to the list becomes the first of only the ~1/(N+1)
 * of nodes that move to it, the others keeping their first. SHA-256, not a runtime hash, so the order
 * holds across agent versions.
 */
export function spreadOrder(urls: readonly string[], nodeId: string): string[] {
  const rank = (url: string) =>
    createHash("sha256")
      .update(nodeId)
      .update("\n")
      .update(url.endsWith("/") ? url : `${url}/`)
      .digest("hex")
  return urls
    .map((url) => ({ url, rank: rank(url) }))
    .sort((a, b) => (a.rank < b.rank ? 1 : a.rank > b.rank ? -1 : 0))
    .map((r) => r.url)
}

export function createReplicas(urls: readonly string[], opts: ReplicaOptions = {}): Replicas {
  if (urls.length === 0) throw new Error("at least one control plane URL is needed")
  const list = urls.map((u) => (u.endsWith("/") ? u : `${u}/`))
  const failbackMs = list.length < 2 ? 0 : (opts.failbackMs ?? DEFAULT_FAILBACK_SECONDS * 1000)
  const ready = opts.ready ?? replicaReady
  let index = 0
  // While every replica fails, moving round the list is logged once, then at debug level.
  let quiet = false
  // One question at a time, the next asked only after the last is answered, while off the first URL.
  let timer: ReturnType<typeof setTimeout> | null = null
  let asking = false
  let closed = false

  const stopAsking = () => {
    if (timer !== null) clearTimeout(timer)
    timer = null
  }
  const askLater = () => {
    if (failbackMs === 0 || closed || asking || timer !== null || index === 0) return
    timer = setTimeout(ask, failbackMs * (0.8 + Math.random() * 0.4))
    timer.unref?.()
  }
  const ask = async () => {
    timer = null
    asking = true
    const first = list[0] as string
    const back = await ready(first).catch(() => false)
    asking = false
    if (closed || index === 0) return
    if (!back) return askLater()
    log.info("the first control plane replica is ready again; moving back to it", {
      from: displayUrl(list[index] as string),
      to: displayUrl(first),
    })
    index = 0
    quiet = false
  }

  return {
    urls: list,
    current: () => ({ url: list[index] as string, index }),
    failed(failedIndex, reason) {
      if (list.length < 2 || failedIndex !== index) return
      index = (index + 1) % list.length
      const fields = { from: displayUrl(list[failedIndex] as string), to: displayUrl(list[index] as string), reason }
      if (quiet) log.debug("control plane replica failed; moving to the next", fields)
      else log.warn("control plane replica failed; moving to the next", fields)
      quiet = true
      if (index === 0) stopAsking()
      else askLater()
    },
    answered() {
      quiet = false
    },
    close() {
      closed = true
      stopAsking()
    },
  }
}
