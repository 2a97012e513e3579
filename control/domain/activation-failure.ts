// What a deploy's activation that did not succeed means for the node, in words for the operator: the
// answer lost (the activation goes on there without the caller), the node claimed by another deploy
// or rollback (nothing changed), the switch stopped at the activation timeout, or the switch failed.
// Only the last two leave something to roll back (deploy.ts does, or the node's watchdog).
import { ACTIVATION_TIMED_OUT_SAYS, switchTimedOut } from "./bounded-switch.ts"
import { refusedBusy } from "./node-claim.ts"
import type { ExecResult } from "./operation-ports.ts"

export type ActivationFailure =
  /** Nothing to do from here: said as it is, the node goes on (or stays) without this deploy. */
  | { kind: "no-answer" | "refused"; why: string }
  /** The switch failed or was stopped: the node rolls back (deploy.ts's abort, or its watchdog). */
  | { kind: "failed"; why: string }

const _lastLines = (s: string, n: number) => s.trim().split("\n").slice(-n).join("\n")

export function activationFailure(
  res: ExecResult,
  o: { target: string; confirmSeconds: number; activationSeconds: number },
): ActivationFailure {
  // No answer (a dropped connection, a time-out): the activation goes on on the node without it
  // (activateScript), and the watchdog that follows it rolls back once it is over, as nothing will
  // confirm it. Its output, the previous generation among it, comes only at its end, so none came back.
  if (res.failure)
    return {
      kind: "no-answer",
      why: `activate: ${res.failure.message}; the activation goes on on the node without this connection, and unconfirmed its watchdog rolls it back to the previous generation ${o.confirmSeconds} s after it ends (at once if it fails, or is stopped at the activation timeout, ${o.activationSeconds} s); a node with no previous generation has no watchdog and stays on what it switched to. See where it is: chimera generations --targets ${o.target}`,
    }
  // Another deploy or rollback claimed the node after this one's plan (node-claim.ts).
  if (refusedBusy(res))
    return {
      kind: "refused",
      why: `activate: ${_lastLines(res.stderr, 1)}; nothing was changed here: deploy again once it is confirmed or rolled back (chimera generations --targets ${o.target} shows where the node is)`,
    }
  // The node stopped a switch still running at the activation timeout (activateScript).
  if (switchTimedOut(res)) {
    const said = _lastLines(
      res.stderr
        .split("\n")
        .filter((l) => !l.includes(ACTIVATION_TIMED_OUT_SAYS))
        .join("\n"),
      4,
    )
    return {
      kind: "failed",
      why: `activate: switch-to-configuration did not finish within the activation timeout (${o.activationSeconds} s) and was stopped on the node${said ? `; it had said: ${said}` : ""}`,
    }
  }
  return { kind: "failed", why: `activate: exited ${res.exitCode}: ${_lastLines(res.stderr || res.stdout, 10)}` }
}
