// A deployment record as `chimera deploy` reports it (POST /api/deployments/records): the shape the
// record tests send, with what they vary given and the rest as the CLI fills it in.
import type { DeploymentRecord, TargetResult } from "../../control/domain/deployment-record.ts"
import { hashOf, type StorePath } from "../../protocol/ids.ts"

export interface ReportedTarget {
  target: string
  status: TargetResult["status"]
  error?: string | null
  log?: string[]
}

export function cliRecord(
  id: string,
  closure: StorePath,
  targets: ReportedTarget[],
  status: DeploymentRecord["status"] = targets.every((t) => t.status === "deployed") ? "succeeded" : "failed",
): DeploymentRecord {
  const at = new Date().toISOString()
  return {
    id,
    kind: "deploy",
    createdAt: at,
    finishedAt: at,
    configPath: "/etc/chimera/web.nix",
    closure,
    hash: hashOf(closure),
    isSystem: true,
    command: null,
    session: "chimera-deploy",
    status,
    targets: targets.map((t) => ({
      target: t.target,
      status: t.status,
      before: null,
      copy: null,
      previous: null,
      error: t.error ?? null,
      timings: [],
      startedAt: at,
      ms: 10,
      log: t.log ?? [],
    })),
  }
}

/** What `chimera deploy --json` printed, parsed; its output in the error when it printed no record. */
export function deployOutput(r: { code: number; stdout: string; stderr: string }): {
  code: number
  record: DeploymentRecord
  stderr: string
} {
  try {
    return { code: r.code, record: JSON.parse(r.stdout) as DeploymentRecord, stderr: r.stderr }
  } catch {
    throw new Error(`deploy printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}
