// Which control-plane replica the agent talks to. Given several URLs (--control-url A,B), the agent
// sticks to one: every request (heartbeat, reports, long poll, command acks, enrolment, credential
// rotation) goes to the chosen replica, so the agent's view of the fleet never splits across two. A
// request that gets no answer (refused, reset, timed out) or a 5xx moves the choice to the next URL in
// the list, wrapping round; the failed request itself is not repeated here: its loop retries with its
// own backoff, which is what keeps a fleet whose replicas are all down from spinning. A failure seen
// on a replica the agent already left changes nothing, so two loops failing together on A move the
// agent to B once, not to B and back to A.
import { createLogger, displayUrl } from "../protocol/log.ts"

const log = createLogger("replicas")

export interface Replicas {
  /** The replica to use now, with its position (hand the position back to `failed`). */
  current(): { url: string; index: number }
  /** A request to replica `index` got no answer or a 5xx: move on, if the agent is still on it. */
  failed(index: number, reason: string): void
  /** A request got an answer below 500: the next move is news again (logged as a warning). */
  answered(): void
  /** All URLs, in the order given. */
  readonly urls: readonly string[]
}

export function createReplicas(urls: readonly string[]): Replicas {
  if (urls.length === 0) throw new Error("at least one control plane URL is needed")
  const list = urls.map((u) => (u.endsWith("/") ? u : `${u}/`))
  let index = 0
  // While every replica fails, moving round the list is logged once, then at debug level.
  let quiet = false
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
    },
    answered() {
      quiet = false
    },
  }
}
