// One command's answers from many nodes, in the one shape every door prints them: `POST /api/fleet/run`
// and `chimera nodes run --json` (through the agents), `chimera exec --json` (over SSH). The names are
// the API's, which the README shows; a script that reads one reads the others.

/**
 * ok: exited 0; failed: exited non-zero, or could not start (exit_code null); offline: not reached;
 * cancelled: its caller cancelled it, and it was stopped on the node or never reached it.
 */
export type CommandStatus = "ok" | "failed" | "timeout" | "offline" | "cancelled"

export interface NodeCommandResult {
  /** The node's id; over SSH, the target as it was given. */
  node: string
  status: CommandStatus
  success: boolean
  exit_code: number | null
  stdout: string
  stderr: string
  /** Seconds from sending the command to its answer (0 for a node not sent it). */
  duration: number
}

export interface CommandResults<R extends NodeCommandResult = NodeCommandResult> {
  results: R[]
  summary: Record<CommandStatus, number>
  /** Seconds, the whole run. */
  duration: number
}

/** Milliseconds as the seconds a result gives, to the millisecond. */
export const seconds = (ms: number) => Math.round(ms) / 1000

/** The results with how many ended each way and the run's `ms`. */
export function commandResults<R extends NodeCommandResult>(results: R[], ms: number): CommandResults<R> {
  const summary: Record<CommandStatus, number> = { ok: 0, failed: 0, timeout: 0, offline: 0, cancelled: 0 }
  for (const r of results) summary[r.status]++
  return { results, summary, duration: seconds(ms) }
}
