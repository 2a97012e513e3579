// A deploy to an enrolled node the control plane does not reach over SSH: the closure becomes the
// node's desired one, its agent hears of it at once (its command long poll), realises and activates
// it, and reports. The target is deployed when the agent reports both its profile and its running
// system on the closure; it failed when the agent reports a failed heal or a closure it cannot fetch,
// or reports nothing within the time allowed. There is no SSH watchdog here: a node that cannot
// activate keeps its running system, and its agent keeps retrying and reporting.
import type { StorePath } from "../../protocol/ids.ts"
import { type PhaseTiming, type TargetResult, targetResult } from "../domain/deployment-record.ts"
import type { Fleet } from "../domain/fleet.ts"
import { deriveStatus, type NodeRecord } from "../domain/node.ts"
import type { Clock } from "../domain/ports.ts"
import { storeAway } from "../domain/store-away.ts"
import { untilStored } from "./until-stored.ts"

export interface PullOptions {
  closure: StorePath
  dryRun: boolean
  force: boolean
  timeoutSeconds: number
  clock: Clock
  sleep?: (ms: number) => Promise<void>
  onProgress?: (target: string, message: string) => void
  /** Aborted when the control plane stops: the wait ends, the target failed with that reason. */
  signal?: AbortSignal
}

const onClosure = (n: NodeRecord, closure: string) => n.profilePath === closure && n.currentPath === closure

export async function pullDeploy(fleet: Fleet, node: NodeRecord, o: PullOptions): Promise<TargetResult> {
  const sleep = o.sleep ?? Bun.sleep
  const started = o.clock.now()
  const before = {
    profile: node.profilePath as StorePath | null,
    current: node.currentPath as StorePath | null,
    booted: node.bootedPath as StorePath | null,
  }
  const result = (status: TargetResult["status"], error: string | null, timings: PhaseTiming[] = []): TargetResult =>
    targetResult(node.id, status, error, started, o.clock.now(), { before, timings })
  if (!o.force && onClosure(node, o.closure) && node.desiredPath === o.closure) return result("up-to-date", null)
  if (o.dryRun) return result("planned", null)

  // The agent learns of it only from the store: a database away this moment delays it, ends nothing.
  await untilStored("setting a node's desired closure for a deploy", () => fleet.setDesired(node.id, o.closure), {
    signal: o.signal,
    fields: { node: node.id },
  })
  o.onProgress?.(node.id, "desired closure set; waiting for the agent")
  const deadline = started.getTime() + o.timeoutSeconds * 1000
  for (;;) {
    let now: NodeRecord | null
    try {
      now = await fleet.findNode(node.id)
    } catch (error) {
      // The store away for a moment (PostgreSQL restarting) ends no wait: the agent goes on activating
      // meanwhile, and a later look tells. Only the deadline or a stop ends it, as it would anyway. Any
      // other failure (a broken schema, a bug) would fail each look alike until the deadline.
      if (!storeAway(error) || o.signal?.aborted || o.clock.now().getTime() > deadline) throw error
      await sleep(200)
      continue
    }
    if (!now) return result("failed", "the node was removed while it deployed")
    const timing = (): PhaseTiming[] => [
      { phase: "activate", startedAt: started.toISOString(), ms: o.clock.now().getTime() - started.getTime() },
    ]
    if (onClosure(now, o.closure)) return result("deployed", null, timing())
    // Another deploy (or `PUT …/desired`) gave the node another closure: this one will not come.
    if (now.desiredPath !== o.closure)
      return result("failed", `superseded: the node's desired closure is now ${now.desiredPath ?? "none"}`, timing())
    const status = deriveStatus(now)
    if (now.agentDesiredPath === o.closure && (status === "heal-failed" || status === "missing-closure"))
      return result("failed", `the agent reports ${status}`, timing())
    if (o.signal?.aborted)
      return result(
        "failed",
        `the control plane stopped before the agent reported the closure running (status ${status}); the closure stays desired`,
        timing(),
      )
    if (o.clock.now().getTime() > deadline)
      return result(
        "failed",
        `the agent did not report the closure running within ${o.timeoutSeconds} s (status ${status})`,
        timing(),
      )
    await sleep(200)
  }
}
