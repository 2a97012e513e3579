// A node as the control plane knows it, and the one rule that turns what it knows into a status.
// Status is derived on read, never stored, so it cannot disagree with the facts it comes from.
import { z } from "zod"
import type { AgentPhase } from "../../protocol/agent.ts"
import { maybeHashOf } from "../../protocol/ids.ts"

export const NodeStatus = z.enum([
  "healthy",
  "drifted",
  "healing",
  "heal-failed",
  "missing-closure",
  "unreachable",
  "unknown",
])
export type NodeStatus = z.infer<typeof NodeStatus>

/** How many heartbeat intervals may pass in silence before a node is unreachable. */
export const MISSED_HEARTBEATS = 3

export interface NodeHealthSummary {
  uptimeSeconds: number
  load: [number, number, number]
  memory: { totalBytes: number; availableBytes: number }
  disk: { path: string; totalBytes: number; freeBytes: number }
}

export interface NodeRecord {
  id: string
  hostname: string
  enrolledAt: string
  agentVersion: string | null
  desiredPath: string | null
  desiredSetAt: string | null
  profilePath: string | null
  currentPath: string | null
  bootedPath: string | null
  agentDesiredPath: string | null
  phase: AgentPhase | null
  health: NodeHealthSummary | null
  heartbeatIntervalSeconds: number
  lastHeartbeat: string | null
  unreachable: boolean
  /** Its credentials were revoked: no agent can act for it until it is enrolled again. */
  revoked: boolean
  ackedSeq: number
}

export function deriveStatus(node: NodeRecord): NodeStatus {
  if (node.unreachable) return "unreachable"
  if (!node.lastHeartbeat || !node.desiredPath) return "unknown"
  // The agent's phase speaks for a heal only while it works toward the closure we want.
  if (node.agentDesiredPath === node.desiredPath) {
    if (node.phase === "healing") return "healing"
    if (node.phase === "heal-failed") return "heal-failed"
    if (node.phase === "missing-closure") return "missing-closure"
  }
  return node.currentPath === node.desiredPath && node.profilePath === node.desiredPath ? "healthy" : "drifted"
}

/** The node as the API shows it: hashes are the 32-character hash part of each store path. */
export function nodeView(node: NodeRecord) {
  return {
    id: node.id,
    hostname: node.hostname,
    status: deriveStatus(node),
    desiredHash: maybeHashOf(node.desiredPath),
    currentHash: maybeHashOf(node.currentPath),
    profileHash: maybeHashOf(node.profilePath),
    bootedHash: maybeHashOf(node.bootedPath),
    desiredPath: node.desiredPath,
    currentPath: node.currentPath,
    profilePath: node.profilePath,
    bootedPath: node.bootedPath,
    rebootRequired: node.bootedPath !== null && node.currentPath !== null && node.bootedPath !== node.currentPath,
    phase: node.phase,
    lastHeartbeat: node.lastHeartbeat,
    heartbeatIntervalSeconds: node.heartbeatIntervalSeconds,
    enrolledAt: node.enrolledAt,
    agentVersion: node.agentVersion,
    health: node.health,
    /** Its credential was revoked: whatever `status` says, no agent acts for it until it enrols again. */
    revoked: node.revoked,
  }
}
export type NodeView = ReturnType<typeof nodeView>
