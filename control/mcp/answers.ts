// What each MCP tool answers: `{status, message, targets}` (the tools' documented shape) plus the
// details a model can reason with. A deploy is followed to its end, with progress notifications to a
// client that asked for them.
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js"
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js"
import type { CommandResults } from "../domain/command-results.ts"
import type { Operation } from "../ops/catalogue.ts"
import type { CongruenceRow } from "../ops/fleet-congruence.ts"
import { type ApiCaller, errorText } from "./api-caller.ts"
import type { Progress } from "./progress.ts"

/** What a tool's handler is given besides its input: the call's signal, id and progress token. */
export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>
type Answer = Record<string, unknown> & { status: "success" | "failed" | "error"; message: string; targets: string[] }

/** How long a deploy may take before the tool gives up following it (it goes on; its id is in the answer). */
const FOLLOW_MS = 30 * 60_000

interface TargetOutcome {
  target: string
  status: string
  error: string | null
}
interface DeploymentView {
  id: string
  status: string
  closure?: string
  targets: TargetOutcome[] | string[]
  progress?: Record<string, string>
  /** Why an `interrupted` deploy will not finish. */
  reason?: string
}

async function followDeployment(api: ApiCaller, id: string, extra: ToolExtra, progress: Progress) {
  const until = Date.now() + FOLLOW_MS
  while (Date.now() < until) {
    if (extra.signal.aborted) throw new Error(`stopped following deployment ${id}; it goes on (deployment://${id})`)
    const answer = await api({ method: "GET", path: `/api/deployments/${encodeURIComponent(id)}` })
    if (answer.status !== 200) throw new Error(errorText(answer))
    const view = answer.body as DeploymentView
    if (view.status !== "running") return view
    const now = Object.entries(view.progress ?? {})
      .map(([t, p]) => `${t}: ${p}`)
      .join("; ")
    await progress.say(now || "starting")
    await Bun.sleep(300)
  }
  throw new Error(
    `deployment ${id} is still running after ${FOLLOW_MS / 60_000} minutes; follow it at deployment://${id}`,
  )
}

export async function shapeAnswer(
  op: Operation,
  input: Record<string, unknown>,
  body: unknown,
  api: ApiCaller,
  extra: ToolExtra,
  progress: Progress,
): Promise<Answer> {
  const named = Array.isArray(input.targets) ? (input.targets as string[]) : []
  switch (op.name) {
    case "execute_deployment": {
      const { id } = body as { id: string }
      const record = await followDeployment(api, id, extra, progress)
      if (record.status === "interrupted")
        return {
          status: "failed",
          message: `Deployment interrupted: ${record.reason ?? "its control plane stopped before it finished"}`,
          targets: record.targets as string[],
          deployment: id,
          progress: record.progress ?? {},
        }
      const results = (record.targets as TargetOutcome[]).map((t) => ({
        target: t.target,
        status: t.status,
        error: t.error,
      }))
      const ok = record.status === "succeeded"
      const failed = results.filter(
        (r) => r.status === "failed" || r.status === "rolled-back" || r.status === "refused",
      )
      return {
        status: ok ? "success" : "failed",
        message: ok
          ? `Deployment completed: ${record.closure} on ${results.length} targets`
          : `Deployment ${record.status}: ${failed.map((f) => `${f.target} ${f.status}${f.error ? ` (${f.error})` : ""}`).join("; ")}`,
        targets: results.map((r) => r.target),
        deployment: id,
        closure: record.closure,
        results,
      }
    }
    case "rollback_deployment": {
      const results = (
        body as {
          results: {
            target: string
            ok: boolean
            generation: number | null
            path: string | null
            error: string | null
            desired: boolean
          }[]
        }
      ).results
      const ok = results.every((r) => r.ok)
      return {
        status: ok ? "success" : "failed",
        message: ok
          ? `Rollback completed: ${results.map((r) => `${r.target} on generation ${r.generation}`).join(", ")}`
          : `Rollback failed on ${results
              .filter((r) => !r.ok)
              .map((r) => `${r.target} (${r.error})`)
              .join(", ")}`,
        targets: results.map((r) => r.target),
        results,
      }
    }
    case "run_command": {
      // Relayed per node, failures as values: the call succeeds only where every node ran the command.
      const relayed = body as CommandResults
      const failed = relayed.results.filter((r) => !r.success)
      return {
        status: failed.length === 0 ? "success" : "failed",
        message:
          failed.length === 0
            ? `Command succeeded on ${relayed.results.length} nodes`
            : `Command failed on ${failed.length} of ${relayed.results.length} nodes: ${failed.map((r) => `${r.node} ${r.status}${r.exit_code === null ? "" : ` (exit ${r.exit_code})`}`).join("; ")}`,
        targets: relayed.results.map((r) => r.node),
        result: relayed,
      }
    }
    case "check_congruence": {
      const { expected, targets } = body as { expected: string | null; targets: CongruenceRow[] }
      const count = (s: string) => targets.filter((t) => t.status === s).length
      const drifted = targets.filter((t) => t.status !== "congruent")
      return {
        status: "success",
        message:
          drifted.length === 0
            ? `Congruence check result: all ${targets.length} congruent`
            : `Congruence check result: ${count("congruent")} congruent; ${drifted.map((t) => `${t.target} ${t.status}${t.kinds ? ` (${t.kinds.join(", ")})` : ""}`).join("; ")}`,
        targets: targets.map((t) => t.target),
        expected,
        results: targets,
      }
    }
    default:
      return { status: "success", message: op.title, targets: named, result: body }
  }
}
