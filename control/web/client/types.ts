// What the dashboard reads from the API, as the API answers it (control/domain/node.ts nodeView,
// control/domain/events.ts, control/domain/deploy.ts, control/api/*). The browser bundle carries no
// server code, so the shapes are restated here; the browser tests hold them to the real answers.

export const STATUSES = [
  "heal-failed",
  "drifted",
  "unreachable",
  "missing-closure",
  "healing",
  "unknown",
  "healthy",
] as const
export type NodeStatus = (typeof STATUSES)[number]

export interface NodeHealth {
  uptimeSeconds: number
  load: [number, number, number]
  memory: { totalBytes: number; availableBytes: number }
  disk: { path: string; totalBytes: number; freeBytes: number }
}

export interface NodeView {
  id: string
  hostname: string
  status: NodeStatus
  desiredHash: string | null
  currentHash: string | null
  profileHash: string | null
  bootedHash: string | null
  desiredPath: string | null
  currentPath: string | null
  profilePath: string | null
  bootedPath: string | null
  rebootRequired: boolean
  phase: string | null
  lastHeartbeat: string | null
  heartbeatIntervalSeconds: number
  enrolledAt: string
  agentVersion: string | null
  /** Its credential was revoked: shown as "revoked" whatever `status` says. */
  revoked: boolean
  health: NodeHealth | null
}

export interface FleetEvent {
  id: number
  type: string
  nodeId: string | null
  at: string
  data: Record<string, unknown>
}

export interface Me {
  name: string
  role: "viewer" | "operator" | "admin"
  via: "session" | "api-token"
  permissions: string[]
}

export interface HealthSample {
  at: string
  load1: number
  memoryUsedBytes: number
  memoryTotalBytes: number
  diskUsedBytes: number
  diskTotalBytes: number
}

export interface NodeCommand {
  id: string
  kind: string
  summary: string
  createdAt: string
  ackedAt: string | null
  success: boolean | null
  exitCode: number | null
  timedOut: boolean
  cancelled: boolean
  output: string
  stderr: string
  truncated: boolean
}

export interface PhaseTiming {
  phase: string
  startedAt: string
  ms: number
}

export interface DeploymentTarget {
  target: string
  status: string
  ms: number
  error: string | null
  timings?: PhaseTiming[]
  startedAt?: string
  log?: string[]
  before?: { profile: string | null; current: string | null; booted: string | null } | null
  copy?: { missingPaths: number; narBytes: number } | null
}

export interface Deployment {
  id: string
  kind: "deploy" | "heal"
  createdAt: string
  finishedAt: string
  configPath: string
  closure: string
  hash: string
  command: string | null
  status: string
  targets: DeploymentTarget[]
}

/** A deploy without a record yet: still running, or interrupted (its control plane stopped first). */
export interface UnfinishedDeployment {
  id: string
  status: "running" | "interrupted"
  createdAt: string
  targets: string[]
  progress: Record<string, string>
  reason?: string
}

export interface RelayResult {
  results: {
    node: string
    status: string
    success: boolean
    exit_code: number | null
    stdout: string
    stderr: string
    duration: number
  }[]
  summary: Record<string, number>
  duration: number
}

/** An incident as GET /api/incidents lists it (control/domain/incident-model.ts). */
export interface IncidentView {
  id: string
  nodeId: string
  problem: string
  severity: "info" | "warning" | "critical"
  status: "open" | "resolved"
  title: string
  message: string
  occurrences: number
  openedAt: string
  resolvedAt: string | null
  ticketId: string | null
  ticketLabel: string | null
  undelivered: number
  failed: number
}
