// A deployment as it is kept and shown: each target's result (status, phases and their timings, what
// ran before, the previous generation, the error) and the run's record, its id and status. Made by a
// deploy over SSH (deploy.ts) or through agents (ops/pull-deploy.ts), stored, shown by the CLI, the
// API and the dashboards.
import { randomUUID } from "node:crypto"
import type { StorePath } from "../../protocol/ids.ts"
import type { SystemState } from "./operation-ports.ts"

export type Phase = "plan" | "copy" | "activate" | "command" | "health" | "confirm"
/**
 * `refused`: the node's claim turned the activation away, as another deploy or rollback was switching
 * it or unconfirmed there (node-claim.ts); nothing on the node failed or changed.
 */
export type TargetStatus = "planned" | "up-to-date" | "deployed" | "failed" | "rolled-back" | "refused"

export interface PhaseTiming {
  phase: Phase
  startedAt: string
  ms: number
}

export interface TargetResult {
  target: string
  status: TargetStatus
  before: SystemState | null
  copy: { missingPaths: number; narBytes: number } | null
  previous: { generation: number; path: StorePath } | null
  error: string | null
  timings: PhaseTiming[]
  startedAt: string
  ms: number
  log: string[]
}

/**
 * A target's result with nothing copied or rolled back yet (a deploy through its agent, one that ended
 * on an error, or one about to start), timed from `startedAt` to `now`.
 */
export function targetResult(
  target: string,
  status: TargetStatus,
  error: string | null,
  startedAt: Date,
  now: Date,
  more: Partial<Pick<TargetResult, "before" | "timings">> = {},
): TargetResult {
  return {
    target,
    status,
    before: more.before ?? null,
    copy: null,
    previous: null,
    error,
    timings: more.timings ?? [],
    startedAt: startedAt.toISOString(),
    ms: now.getTime() - startedAt.getTime(),
    log: [],
  }
}

export interface DeploymentRecord {
  id: string
  kind: "deploy" | "heal"
  createdAt: string
  finishedAt: string
  configPath: string
  closure: StorePath
  hash: string
  isSystem: boolean
  command: string | null
  session: string
  status: "succeeded" | "failed" | "partial" | "planned"
  targets: TargetResult[]
}

/** `20261122031333-4fdfe63f`: sorts by time, unique by its random tail. */
export const deploymentId = (isoTime: string) =>
  `${isoTime.slice(0, 19).replace(/[-:T]/g, "")}-${randomUUID().slice(0, 8)}`

/** A run's status from its targets': all done (deployed or up to date), none, or some. */
export function deploymentStatus(targets: TargetResult[], dryRun: boolean): DeploymentRecord["status"] {
  if (dryRun) return "planned"
  const done = targets.filter((t) => t.status === "deployed" || t.status === "up-to-date").length
  return done === targets.length ? "succeeded" : done === 0 ? "failed" : "partial"
}
