// A node's heartbeat as the word that ends an incident. An agent that heals reports heal.succeeded or
// drift.resolved, and those resolve its heal-failed and missing-closure incidents (incident-rules.ts);
// an agent that crashed or was replaced between a failed heal and the node's recovery never sends
// either, and the incident stayed open beside a node shown healthy. A heartbeat that says congruent,
// with its desired closure and both its links (the system profile and the running system) on the
// closure an open incident was about, resolves that incident; one about another closure stays open.
//
// Heartbeats are the hot path (thousands a second), so each is held against an index in memory of the
// open incidents a heartbeat may end, by node, never against the store. The index follows this control
// plane's own openings and resolutions, and is read again from the store now and then
// (IncidentStorePort.openAbout): another replica opens and resolves incidents too, and a restart
// starts with none. An entry it holds after the incident was resolved elsewhere costs a recovery that
// finds nothing open.
import type { NodeHealth } from "../../protocol/agent.ts"
import type { Incident, Problem } from "./incident-model.ts"
import type { IncidentStorePort } from "./incident-ports.ts"
import type { RuleAction } from "./incident-rules.ts"

/** How often the store is read again: other replicas' openings and resolutions are seen this late. */
const REREAD_MS = 10_000

/** The problems a node running the closure their incident names has left behind. */
export const ENDED_BY_CONGRUENCE: Problem[] = ["heal-failed", "missing-closure"]

/** An open incident a heartbeat may end: its node runs `desired`, congruent. */
export interface AwaitedIncident {
  id: string
  nodeId: string
  problem: Problem
  desired: string
}

type Known = Pick<Incident, "id" | "nodeId" | "problem" | "closures">

/** The closure a heartbeat says its node runs, congruent (desired, profile and running system agree), or null. */
function congruentOn(h: NodeHealth): string | null {
  const d = h.desired
  return h.phase === "congruent" && d !== null && h.system.profile === d && h.system.current === d ? d : null
}

const awaited = (i: Known): AwaitedIncident | null =>
  ENDED_BY_CONGRUENCE.includes(i.problem) && i.closures.desired
    ? { id: i.id, nodeId: i.nodeId, problem: i.problem, desired: i.closures.desired }
    : null

/** The incidents open here that a congruent heartbeat ends, by node. */
export function awaitingCongruence(store: Pick<IncidentStorePort, "openAbout">) {
  let byNode = new Map<string, AwaitedIncident[]>()
  let readMs = Number.NEGATIVE_INFINITY
  const drop = (nodeId: string, id: string) => {
    const left = (byNode.get(nodeId) ?? []).filter((a) => a.id !== id)
    if (left.length > 0) byNode.set(nodeId, left)
    else byNode.delete(nodeId)
  }
  return {
    /** Whether the store is due to be read again (and, from now, counted as read). */
    rereadDue(nowMs: number): boolean {
      if (nowMs - readMs < REREAD_MS) return false
      readMs = nowMs
      return true
    },
    /** What the store holds open now, in place of what was known. */
    async reread() {
      const next = new Map<string, AwaitedIncident[]>()
      for (const i of await store.openAbout(ENDED_BY_CONGRUENCE)) {
        const a = awaited(i)
        if (a) next.set(a.nodeId, [...(next.get(a.nodeId) ?? []), a])
      }
      byNode = next
    },
    /** An incident opened or updated here: it awaits the closure it now names, if any. */
    seen(i: Known & Pick<Incident, "status">) {
      drop(i.nodeId, i.id)
      const a = i.status === "open" ? awaited(i) : null
      if (a) byNode.set(a.nodeId, [...(byNode.get(a.nodeId) ?? []), a])
    },
    resolved(i: Pick<Incident, "id" | "nodeId">) {
      drop(i.nodeId, i.id)
    },
    /**
     * The recoveries `h` makes, each of one incident by its id; those incidents leave the index, so
     * the heartbeats that follow before the recovery is written do not ask for it again.
     */
    endedBy(h: NodeHealth): RuleAction[] {
      const open = byNode.get(h.nodeId)
      if (!open) return []
      const runs = congruentOn(h)
      const ended = runs === null ? [] : open.filter((a) => a.desired === runs)
      for (const a of ended) drop(a.nodeId, a.id)
      return ended.map((a) => ({
        kind: "recover",
        nodeId: a.nodeId,
        problems: [a.problem],
        incidentId: a.id,
        message:
          "the node reported congruent: its heartbeat says it runs the closure this incident was about (no heal or drift report said so)",
      }))
    },
  }
}
