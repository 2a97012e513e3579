// The heartbeat loop: every --heartbeat seconds the agent POSTs its NodeHealth; the answer carries the
// desired closure the control plane holds for this node, which becomes the agent's own when it differs.
// `poke()` sends one at once (after a heal or a phase change) so dashboards need not wait an interval.
// Every wait is spread by ±20 %, so a fleet that starts (or comes back) together does not heartbeat in
// lockstep. Failures are logged once per outage and retried at about the interval (a node more than
// three intervals silent shows as unreachable), backing off much further while the control plane
// refuses the credential.
import type { HeartbeatResponse, NodeHealth } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { createLogger } from "../protocol/log.ts"
import { createBackoff, sleep, spreadPeriod } from "./backoff.ts"
import { ControlError, type OrchestratorPort } from "./control-client.ts"

const log = createLogger("heartbeat")

export interface HeartbeatLoopInput {
  client: OrchestratorPort
  intervalSeconds: number
  collect(): Promise<NodeHealth>
  /** `askedAt`: performance.now() when the heartbeat that brought it went out. */
  onDesired(closure: StorePath, askedAt: number): void
  /** The control plane asks for a new credential (agent/credential-rotation.ts). */
  onRotateCredential?(): void
}

export interface HeartbeatLoop {
  poke(): void
  stop(): void
}

export function startHeartbeat(input: HeartbeatLoopInput): HeartbeatLoop {
  const intervalMs = input.intervalSeconds * 1000
  const backoff = createBackoff({ initialMs: intervalMs, maxMs: Math.max(intervalMs, 300_000), jitter: "equal" })
  let ac = new AbortController()
  let stopped = false
  let failing = false

  const beat = async (): Promise<number> => {
    try {
      const health = await input.collect()
      const askedAt = performance.now()
      const res: HeartbeatResponse = await input.client.heartbeat(health)
      if (failing) log.info("control plane reachable again")
      failing = false
      backoff.reset()
      if (res.desired) input.onDesired(res.desired, askedAt)
      if (res.rotateCredential) input.onRotateCredential?.()
      return spreadPeriod(intervalMs)
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      const refused = err instanceof ControlError && err.refused
      const delay = refused ? backoff.next() : spreadPeriod(intervalMs)
      if (refused)
        log.error("control plane refused this agent's credential (revoked?); still enforcing locally", { error })
      else if (!failing) log.warn("heartbeat failed; still enforcing locally", { error })
      failing = true
      return delay
    }
  }

  void (async () => {
    while (!stopped) {
      const delay = await beat()
      await sleep(delay, ac.signal)
      ac = new AbortController()
    }
  })()

  return {
    poke() {
      ac.abort()
    },
    stop() {
      stopped = true
      ac.abort()
    },
  }
}
