// Where an interrupted `chimera deploy` leaves each target, in a line an operator can act on, and what
// it waits for first. Ctrl-C starts nothing further (deploy.ts), but what was sent goes on on the node
// (activation.ts): an activation under way finishes there, and nothing will confirm it, so its watchdog
// rolls it back when the confirm timeout passes. A target confirmed but not published as its node's
// desired closure is switched back by its agent once the deploy's hold lapses, so the CLI waits for a
// confirmation under way and the publish that follows it (busy, idle), as a rollback does. The tracker
// follows each target through the deploy's hooks and says which of these applies, and when.
import { MAX_DEPLOY_HOLD_SECONDS } from "../../protocol/agent.ts"
import type { StorePath } from "../../protocol/ids.ts"
import type { DeployDeps } from "../domain/deploy.ts"
import type { Phase, TargetResult } from "../domain/deployment-record.ts"
import { progressWaiter } from "./interrupt.ts"
import type { DesiredPublisher } from "./publish-desired.ts"

interface _Seen {
  phase: Phase
  sofar: Readonly<TargetResult>
  done: boolean
}

export interface DeployTracker {
  onPhase: NonNullable<DeployDeps["onPhase"]>
  onDone: NonNullable<DeployDeps["onDone"]>
  /** The target is confirmed on `closure`: called before its desired closure is published. */
  confirmed(target: string, closure: StorePath): void
  /** One line per target: where it is and what it does next without this command. */
  whereLeft(now?: number): string[]
  /** Targets whose confirmation or publish is under way, on a node an agent would switch back. */
  busy(): string[]
  /** Resolves once busy() is empty. */
  idle(): Promise<void>
}

const _secondsLeft = (until: number, now: number) => Math.max(0, Math.round((until - now) / 1000))

/** The end of a phase that has ended, as a time in ms; null while it runs or if it never started. */
function _ended(r: Readonly<TargetResult>, phase: Phase): number | null {
  const t = r.timings.find((p) => p.phase === phase)
  return t ? Date.parse(t.startedAt) + t.ms : null
}

export function deployTracker(
  targets: string[],
  o: { confirmTimeoutSeconds: number; activationTimeoutSeconds: number; publisher: DesiredPublisher | null },
): DeployTracker {
  const seen = new Map<string, _Seen>()
  const closures = new Map<string, StorePath>()
  const waiter = progressWaiter()
  const see = (target: string, s: _Seen) => {
    seen.set(target, s)
    waiter.changed()
  }
  const busy = () =>
    targets.filter((t) => {
      const s = seen.get(t)
      return s?.phase === "confirm" && !s.done && o.publisher?.covers(t) === true
    })
  /** A target confirmed on `closure`: whether the control plane has it as desired, and if not what to run. */
  const kept = (target: string, closure: StorePath, r: Readonly<TargetResult>, now: number): string => {
    const outcome = o.publisher?.outcome(target) ?? null
    if (!outcome) return ", and stays on it"
    if (outcome.kind === "published") return "; the control plane has it as its desired closure, so its agent keeps it"
    if (outcome.kind === "not-enrolled")
      return `; the control plane has no node ${target} enrolled, so no agent switches it back`
    // The activation writes the confirm window's hold once its switch has ended (activateScript).
    const holdEnds =
      (_ended(r, "activate") ?? now) + Math.min(o.confirmTimeoutSeconds + 60, MAX_DEPLOY_HOLD_SECONDS) * 1000
    return `, but ${outcome.why}; its agent switches it back to its desired closure in about ${_secondsLeft(holdEnds, now)} s, when the deploy's hold lapses, unless: chimera nodes set-desired ${target} ${closure}`
  }
  const where = (target: string, now: number): string => {
    const s = seen.get(target)
    const closure = closures.get(target)
    if (s?.done && s.sofar.status === "deployed" && closure)
      return `${target}: deployed, confirmed on ${closure}${kept(target, closure, s.sofar, now)}`
    if (s?.done) return `${target}: ${s.sofar.status}${s.sofar.error ? `: ${s.sofar.error}` : ""}`
    if (!s || s.phase === "plan" || s.phase === "copy") return `${target}: not activated, unchanged`
    const r = s.sofar
    const activatedAt = _ended(r, "activate")
    const back = (at: number) =>
      r.previous
        ? `its watchdog rolls it back to generation ${r.previous.generation} in about ${_secondsLeft(at, now)} s, unless it was rolled back already`
        : "it had no previous generation, so it has no watchdog and stays on the new closure, unconfirmed"
    if (activatedAt === null)
      return `${target}: activating; the switch finishes on the node without this command (or is stopped there ${o.activationTimeoutSeconds} s after it began), and since nothing will confirm it, its watchdog then rolls it back to the previous generation ${o.confirmTimeoutSeconds} s later (at once if the switch fails or is stopped)`
    const rollsBackAt = activatedAt + o.confirmTimeoutSeconds * 1000
    if (s.phase !== "confirm") return `${target}: activated, not confirmed; ${back(rollsBackAt)}`
    if (!closure)
      return `${target}: confirming; if the confirmation reached it, it stays on the new closure, otherwise ${back(rollsBackAt)}. See where it is: chimera generations --targets ${target}`
    // Confirmed: the publish of its desired closure was under way.
    return `${target}: confirmed on ${closure}${kept(target, closure, r, now)}`
  }
  return {
    onPhase: (target, phase, sofar) => see(target, { phase, sofar, done: false }),
    onDone(result) {
      const s = seen.get(result.target)
      see(result.target, { phase: s?.phase ?? "plan", sofar: result, done: true })
    },
    confirmed: (target, closure) => closures.set(target, closure),
    whereLeft: (now = Date.now()) => targets.map((t) => where(t, now)),
    busy,
    idle: () => waiter.until(() => busy().length === 0),
  }
}
