// Cancelling a relayed run (POST /api/fleet/run/:runId/cancel, or its caller going away): the run's
// commands are found in the store by the run's id, so a cancel through any replica reaches a run
// relayed by another. A command not delivered yet is closed and never delivered; one an agent took is
// marked, and its agent hears it on its long poll, kills the command's process group and acks what it
// wrote so far (relay.ts answers it `cancelled`). Who may run the command may cancel it: the same risk
// rule as running it (a high-risk command's run is an admin's to stop).
import type { Role } from "./auth/roles.ts"
import { checkCommandRisk } from "./command-risk.ts"
import { ChimeraError, conflict } from "./errors.ts"
import type { Fleet } from "./fleet.ts"
import type { StorePort } from "./ports.ts"

/** What a relay answers for a command closed before its agent fetched it. */
export const NOT_STARTED = "[chimera: cancelled before the agent fetched it; not run]"

export interface CancelledRun {
  run_id: string
  /** Nodes whose agents are told to stop the command (it was running, or about to). */
  stopping: string[]
  /** Nodes the command never reached: it will not run there. */
  not_started: string[]
  /** Nodes that had answered already (or timed out): nothing to stop there. */
  ended: string[]
}

export interface RelayCancelDeps {
  fleet: Fleet
  store: StorePort
  /** The relays waiting here for these commands read the store (relay.ts). */
  answeredElsewhere(ids: string[]): void
}

/**
 * Cancels run `runId` for a caller of `role` (null: the run's own caller, who went away); 404 for no
 * such run, 409 when every node has answered.
 */
export async function cancelRun(
  { fleet, store, answeredElsewhere }: RelayCancelDeps,
  runId: string,
  role: Role | null,
): Promise<CancelledRun> {
  const rows = await store.runCommands(runId)
  const [first] = rows
  if (!first)
    throw new ChimeraError(
      "NOT_FOUND",
      `run ${runId} not found: no command was queued under that id (unknown, every node offline, or answered long enough ago to be pruned)`,
    )
  if (role !== null) checkCommandRisk(role, first.command)
  const ended = () =>
    conflict(
      `run ${runId} has ended: every node answered or timed out (${rows.length} ${rows.length === 1 ? "node" : "nodes"}); nothing was cancelled`,
      { runId, ended: rows.map((r) => r.nodeId).sort() },
    )
  const open = rows.filter((r) => !r.answered)
  if (open.length === 0) throw ended()
  const { closed, signalled } = await fleet.cancelCommands(
    open.map((r) => r.id),
    NOT_STARTED,
  )
  // The last ones answered between the read and the cancel.
  if (closed.length + signalled.length === 0) throw ended()
  answeredElsewhere(closed.map((c) => c.id))
  const touched = new Set([...closed, ...signalled].map((c) => c.id))
  return {
    run_id: runId,
    stopping: signalled.map((c) => c.nodeId).sort(),
    not_started: closed.map((c) => c.nodeId).sort(),
    ended: rows
      .filter((r) => !touched.has(r.id))
      .map((r) => r.nodeId)
      .sort(),
  }
}
