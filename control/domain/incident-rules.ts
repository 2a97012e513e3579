// The rules that turn fleet events into incident actions. A problem seen at once (a failed heal, a
// missing closure, a revoked credential) is observed directly; one that counts only if it lasts (a
// silent node, a drift nobody heals) starts a watch, which the engine turns into an incident once the
// threshold has passed. The node's recovery (a heal that worked, a drift gone, a heartbeat again, a
// new enrolment) resolves the incidents it ends and drops the watches. Pure: the engine does the I/O.
import { z } from "zod"
import type { FleetEvent } from "./events.ts"
import { DEFAULT_SEVERITY, type Observation, Problem, TITLES } from "./incident-model.ts"
import { utcText } from "./utc-text.ts"

export type RuleAction =
  | { kind: "observe"; observation: Observation }
  /** `incidentId`: only that incident, if it is still open (a heartbeat's word, incident-heartbeats.ts). */
  | { kind: "recover"; nodeId: string; problems: Problem[]; message: string; incidentId?: string }
  | { kind: "watch"; nodeId: string; problem: Problem; sinceMs: number; message: string }
  /** A deployment's targets decide: the engine reads its record. */
  | { kind: "deployment"; id: string; status: string }

// The agent's heal.failed for a closure it cannot fetch says so in these words (agent/heal.ts); that
// failure belongs to the missing-closure incident its drift report opened, not to a second one.
const MISSING_CLOSURE_ERROR = /is not in the local store/

const HealFailed = z.object({ desired: z.string(), attempt: z.number(), error: z.string() })
const DriftDetected = z.object({ desired: z.string(), kinds: z.array(z.string()) })
const Unreachable = z.object({ lastHeartbeat: z.string().nullable().optional() })
const DeploymentFinished = z.object({ id: z.string(), status: z.string() })

/** Everything a node's convergence ends: it runs its desired closure again. */
const CONVERGED: Problem[] = ["heal-failed", "missing-closure", "drift-unhealed"]

const observe = (
  nodeId: string,
  problem: Problem,
  message: string,
  at: string,
  desired: string | null = null,
): RuleAction => ({
  kind: "observe",
  observation: {
    nodeId,
    problem,
    severity: DEFAULT_SEVERITY[problem],
    title: TITLES[problem](nodeId),
    message,
    closures: { desired, current: null },
    at,
  },
})

/** What `event` means for incidents, judged at `at` (the control plane's clock). */
export function rulesFor(event: FleetEvent, at: string): RuleAction[] {
  const node = event.nodeId
  if (event.type === "deployment.finished") {
    const d = DeploymentFinished.safeParse(event.data)
    return d.success ? [{ kind: "deployment", id: d.data.id, status: d.data.status }] : []
  }
  if (node === null) return []
  switch (event.type) {
    case "heal.failed": {
      const d = HealFailed.safeParse(event.data)
      if (!d.success) return []
      const problem = MISSING_CLOSURE_ERROR.test(d.data.error) ? "missing-closure" : "heal-failed"
      return [observe(node, problem, `heal attempt ${d.data.attempt} failed: ${d.data.error}`, at, d.data.desired)]
    }
    case "drift.detected": {
      const d = DriftDetected.safeParse(event.data)
      if (!d.success) return []
      const kinds = d.data.kinds.join(", ")
      const watch: RuleAction = {
        kind: "watch",
        nodeId: node,
        problem: "drift-unhealed",
        sinceMs: Date.parse(at),
        message: `drift detected (${kinds}) and not healed`,
      }
      if (!d.data.kinds.includes("missing-closure")) return [watch]
      const missing = `the desired closure ${d.data.desired} is not in the node's store`
      return [observe(node, "missing-closure", missing, at, d.data.desired), watch]
    }
    case "heal.succeeded":
      return [
        { kind: "recover", nodeId: node, problems: CONVERGED, message: "healed: the node runs its desired closure" },
      ]
    case "drift.resolved":
      return [{ kind: "recover", nodeId: node, problems: CONVERGED, message: "the node is congruent again" }]
    case "node.unreachable": {
      const d = Unreachable.safeParse(event.data)
      const last = d.success && d.data.lastHeartbeat ? Date.parse(d.data.lastHeartbeat) : Date.parse(at)
      const since = Number.isNaN(last) ? Date.parse(at) : last
      return [
        {
          kind: "watch",
          nodeId: node,
          problem: "unreachable",
          sinceMs: since,
          message: `no heartbeat since ${utcText(since)}`,
        },
      ]
    }
    case "node.reachable":
      return [{ kind: "recover", nodeId: node, problems: ["unreachable"], message: "heartbeats again" }]
    case "node.enrolled":
      return [
        {
          kind: "recover",
          nodeId: node,
          problems: ["unreachable", "credential-revoked"],
          message: "the node enrolled again with a new credential",
        },
      ]
    case "node.removed":
      return [
        { kind: "recover", nodeId: node, problems: Problem.options, message: "the node was removed from the fleet" },
      ]
    case "node.revoked":
      return [
        observe(node, "credential-revoked", "the agent's credential was revoked; it can no longer report", at),
        { kind: "recover", nodeId: node, problems: ["unreachable"], message: "its credential was revoked" },
      ]
    default:
      return []
  }
}

/** The message of an incident a watch opened, once its threshold passed. */
export function watchMessage(problem: Problem, message: string, sinceMs: number, nowMs: number): string {
  const seconds = Math.round((nowMs - sinceMs) / 1000)
  return problem === "unreachable" ? `${message} (${seconds} s)` : `${message} for ${seconds} s`
}
