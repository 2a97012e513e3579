// Fleet events: what happened to which node, when. Agent reports become events one for one (their
// types are the agent's report types); the control plane adds its own (enrolment, reachability,
// desired-state changes). Events are stored in arrival order, which for one node is the agent's order.
import { z } from "zod"

export const ControlEventType = z.enum([
  "node.enrolled",
  "node.unreachable",
  "node.reachable",
  "desired.changed",
  "command.acked",
  "node.revoked",
  "node.removed",
  "node.rotation-requested",
  "deployment.started",
  "deployment.progress",
  "deployment.finished",
  "incident.opened",
  "incident.updated",
  "incident.resolved",
])
export type ControlEventType = z.infer<typeof ControlEventType>
export const EventType = z.enum([
  ...ControlEventType.options,
  "drift.detected",
  "drift.resolved",
  "heal.started",
  "heal.succeeded",
  "heal.failed",
  "reboot.required",
  "reports.compacted",
  "report.quarantined",
  "boot.rolled-back",
])
export type EventType = z.infer<typeof EventType>

export interface FleetEvent {
  id: number
  type: EventType
  nodeId: string | null
  at: string
  data: Record<string, unknown>
}

export interface NewEvent {
  type: EventType
  nodeId: string | null
  at: string
  data: Record<string, unknown>
  /** The agent's sequence number, for reports: the store keeps each (node, seq) once. */
  agentSeq?: number
  /** When the control plane took it (its clock); retention counts from here, never from an agent's `at`. */
  receivedAt?: string
}
