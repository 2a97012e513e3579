// A deploy or a rollback makes its closure each enrolled target's desired state on the control plane
// (through its API, so it is audited as a set-desired), and the node's agent keeps it instead of
// healing it back. Each target is published the moment it is confirmed (deploy.ts's onConfirmed) or
// rolled back (rollback.ts's onRolledBack), while the hold on the node's agent still stands. Targets are
// matched to nodes by name (a [fleet.nodes.NAME] target, or a node id); a target that is no
// enrolled node is skipped; any other refusal is a problem the deploy reports and exits 1 for.
import { existsSync } from "node:fs"
import { join } from "node:path"
import { NodeId, type StorePath } from "../../protocol/ids.ts"
import { dataDir } from "../config.ts"
import { apiClient, refusal } from "./client.ts"
import { color, field, warn } from "./output.ts"

/** What became of one target's desired closure (DesiredPublisher.outcome). */
export type PublishOutcome =
  | { kind: "published" }
  /** The control plane's 404: no enrolled node, so no agent there heals it back. */
  | { kind: "not-enrolled" }
  /** Not set: the control plane refused it, could not be reached, or has not answered yet. */
  | { kind: "unset"; why: string }

export interface DesiredPublisher {
  /** Whether `target` names a node whose desired closure this publisher would set. */
  covers(target: string): boolean
  /** What became of `target`'s desired closure so far; null when this publisher does not set it. */
  outcome(target: string): PublishOutcome | null
  publish(target: string, closure: StorePath): Promise<void>
  readonly published: string[]
  readonly problems: string[]
}

/** A publisher, or null when no control plane is configured (no CHIMERA_URL and no local admin token). */
export function desiredPublisher(env = process.env): DesiredPublisher | null {
  if (!env.CHIMERA_URL && !existsSync(join(dataDir(env), "admin.token"))) return null
  const published: string[] = []
  const notEnrolled: string[] = []
  const problems: string[] = []
  let client: ReturnType<typeof apiClient> | null = null
  try {
    client = apiClient(env)
  } catch (error) {
    problems.push(`desired closures not published: ${(error as Error).message}`)
  }
  const covers = (target: string) => client !== null && NodeId.safeParse(target).success
  return {
    published,
    problems,
    covers,
    outcome(target) {
      if (!covers(target)) return null
      if (published.includes(target)) return { kind: "published" }
      if (notEnrolled.includes(target)) return { kind: "not-enrolled" }
      const problem = problems.find((m) => m.startsWith(`${target}: `))
      return { kind: "unset", why: problem ? problem.slice(target.length + 2) : "the control plane has not answered" }
    },
    async publish(target, closure) {
      if (!client || !covers(target)) return
      try {
        const res = await client.client.api.nodes[":id"].desired.$put({ param: { id: target }, json: { closure } })
        if (res.ok) published.push(target)
        else if (res.status === 404) notEnrolled.push(target)
        else
          problems.push(
            `${target}: the control plane refused the desired closure: ${(await refusal(client.url, res)).message}`,
          )
      } catch (error) {
        problems.push(
          `${target}: desired closure not published, ${client.url} unreachable (${(error as Error).message})`,
        )
      }
    },
  }
}

/** Says on stderr which nodes now have the closure as desired, and warns (exit 1) of any that do not. */
export function reportPublished(publisher: DesiredPublisher | null, quiet: boolean): void {
  if (publisher?.published.length && !quiet)
    // Sorted: targets are published in the order they are confirmed, which says nothing to a reader.
    warn(`${color.dim(`desired closure set on the control plane for ${publisher.published.toSorted().join(", ")}`)}\n`)
  for (const problem of publisher?.problems ?? []) {
    warn(`${color.yellow("warning")} ${field(problem)}\n`)
    process.exitCode = 1
  }
}
