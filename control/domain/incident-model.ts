// What an incident is: one open problem on one node (at most one open per node and problem), with a
// severity, a timeline of what happened to it, and the notifications and ticket changes it caused.
// Repeats of the same problem update the open incident; the node's recovery resolves it. The rules
// that open and resolve incidents live in incident-rules.ts; who hears of each step, in
// incident-routing.ts.
import { z } from "zod"

export const Problem = z.enum([
  "heal-failed",
  "unreachable",
  "drift-unhealed",
  "missing-closure",
  "deploy-failed",
  "credential-revoked",
])
export type Problem = z.infer<typeof Problem>

export const Severity = z.enum(["info", "warning", "critical"])
export type Severity = z.infer<typeof Severity>

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 }
/** Whether `severity` is at least `minimum`. */
export const atLeast = (severity: Severity, minimum: Severity) => RANK[severity] >= RANK[minimum]

/** How bad each problem is unless a rule says otherwise. */
export const DEFAULT_SEVERITY: Record<Problem, Severity> = {
  "heal-failed": "critical",
  unreachable: "critical",
  "missing-closure": "critical",
  "drift-unhealed": "warning",
  "deploy-failed": "warning",
  "credential-revoked": "warning",
}

export type IncidentStatus = "open" | "resolved"
/** `updated-N` is the Nth update that was worth telling the ticket about. */
export type IncidentStep = "opened" | `updated-${number}` | "resolved"

/** The closures the incident is about, as store paths (null where unknown). */
export interface IncidentClosures {
  desired: string | null
  current: string | null
}

export interface Incident {
  id: string
  nodeId: string
  problem: Problem
  severity: Severity
  status: IncidentStatus
  title: string
  /** The latest word on it: what failed, how long the node has been silent. */
  message: string
  closures: IncidentClosures
  /** How many times the problem was seen while the incident was open. */
  occurrences: number
  openedAt: string
  updatedAt: string
  resolvedAt: string | null
  /** The ticket's id in the ITSM tool, once it answered the create. */
  ticketId: string | null
  /** What a person sees for the ticket where it differs from the id (ServiceNow's INC0010001). */
  ticketLabel: string | null
}

export interface TimelineEntry {
  at: string
  step: "opened" | "updated" | "resolved"
  message: string
}

export type DeliveryStatus = "pending" | "delivered" | "failed"

/** One notification or ticket change, as the outbox holds it (never its channel's secrets). */
export interface Delivery {
  id: number
  incidentId: string
  step: IncidentStep
  channel: string
  status: DeliveryStatus
  attempts: number
  /** When the next attempt is due, for one still pending. */
  nextAttemptAt: string | null
  lastError: string | null
  externalId: string | null
  createdAt: string
  deliveredAt: string | null
}

/** What a rule observed: a problem on a node, to open an incident for or to update the open one. */
export interface Observation {
  nodeId: string
  problem: Problem
  severity: Severity
  title: string
  message: string
  closures: IncidentClosures
  at: string
  /**
   * The principal whose deployment record reported it, taken on its word; absent when the control
   * plane saw it itself (a node's report, a deploy it ran). Such an observation opens an incident, or
   * updates one that principal's records opened, and nothing else.
   */
  reporter?: string
}

/** A node recovered from `problems`: their open incidents resolve with `message`. */
export interface Recovery {
  nodeId: string
  problems: Problem[]
  message: string
  at: string
  /** Set for a recovery a deployment record reported: it resolves only incidents records opened. */
  reporter?: string
  /** Set when a person closes one incident by hand: only that one, if it is still open. */
  incidentId?: string
}

export const TITLES: Record<Problem, (node: string) => string> = {
  "heal-failed": (n) => `Heal failed on ${n}`,
  unreachable: (n) => `${n} is unreachable`,
  "drift-unhealed": (n) => `${n} has drifted and is not healed`,
  "missing-closure": (n) => `${n} lacks its desired closure`,
  "deploy-failed": (n) => `Deploy failed on ${n}`,
  "credential-revoked": (n) => `${n}'s agent credential was revoked`,
}
