// The audit entries of an operation run on nodes over SSH (exec, deploy, rollback, watch's heals):
// one per target it touched, with the command and its result. The control plane writes them when the
// CLI reports an operation (POST /api/deployments/records, POST /api/operations/records); a CLI with
// no control plane writes them to its own local store.
import { z } from "zod"
import type { DeploymentRecord } from "../domain/deployment-record.ts"

export const OperationEntry = z
  .object({
    target: z.string().min(1).max(300),
    command: z.string().max(16_384),
    ok: z.boolean(),
    detail: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
export type OperationEntry = z.infer<typeof OperationEntry>

export const OperationRecordBody = z
  .object({
    operation: z.enum(["exec", "rollback", "deploy", "heal"], { error: "expected exec, rollback, deploy or heal" }),
    entries: z.array(OperationEntry).min(1).max(1000),
  })
  .strict()

/** One entry per target a deploy or heal touched (up-to-date targets were only read; planned ones not touched). */
export function deploymentEntries(record: DeploymentRecord): OperationEntry[] {
  return record.targets
    .filter((t) => t.status !== "up-to-date" && t.status !== "planned")
    .map((t) => ({
      target: t.target,
      command: `${record.kind} ${record.closure}${record.command ? ` && ${record.command}` : ""}`,
      ok: t.status === "deployed",
      detail: { deployment: record.id, status: t.status, error: t.error },
    }))
}
