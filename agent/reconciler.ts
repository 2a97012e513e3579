// The reconcile loop: one loop that reads the links, classifies drift, reports what changed and heals,
// one step at a time. Everything that can start a check (a link changing, the poll, a new desired
// closure, a retry coming due, an `activate` command) only marks the loop dirty and wakes it, so
// checks and heals never overlap and the agent never reports its own half-done heal as drift.
// A failed heal is retried with backoff (2 s doubling to 5 min, equal jitter), reset when the desired
// closure changes; with --no-auto-heal drift is only reported, but an explicit `activate` command from
// the control plane is still carried out once, since an operator asked for it.
import type { AgentPhase, DriftKind, SystemLinks } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { createLogger } from "../protocol/log.ts"
import { type Backoff, createBackoff } from "./backoff.ts"
import { classifyDrift, type DriftState, driftChanged, driftPhase } from "./drift.ts"
import { healOnce } from "./heal.ts"
import type { NixSystem } from "./nix-system.ts"
import type { ReportInput } from "./spool.ts"

const log = createLogger("reconciler")

export interface ActivationResult {
  success: boolean
  output: string
}

export interface ReconcilerDeps {
  nix: NixSystem
  /** Where reports go (the spool); called in the order things happen. */
  report(report: ReportInput): void
  /** Makes a new desired closure durable before it is acted on. */
  persistDesired(closure: StorePath, source: string): void
  /**
   * Makes the drift last told durable when it changes (kinds empty: congruent), so that an agent
   * restarted meanwhile (the switch of its own heal restarts it) still reports it resolved.
   */
  persistDrift?(drift: ToldDrift): void
  /** The drift told before a restart, as persisted. */
  initialDrift?: ToldDrift | null
  autoHeal: boolean
  initialDesired?: StorePath | null
  healBackoff?: Backoff
  /** Called after every check with the phase it left (heartbeats go out early when it changes). */
  onPhase?(phase: AgentPhase): void
}

export interface Reconciler {
  readonly desired: StorePath | null
  readonly phase: AgentPhase
  /** The links as last read (all null before the first check). */
  readonly links: SystemLinks
  /**
   * Settles once the first check has read the links and classified them (at the latest when a heal it
   * starts begins, which is not waited for): before it, `links` and `phase` describe nothing real.
   */
  readonly checked: Promise<void>
  /**
   * A new desired closure. `askedAt` (performance.now() when the question went out, for answers that
   * travel, like a heartbeat's): an answer asked before the latest `activate` arrived is older than it
   * and ignored, so a heartbeat in flight across a deploy cannot undo the activation it crossed.
   */
  setDesired(closure: StorePath, source: string, askedAt?: number): void
  /** Makes `closure` desired and heals now; resolves when that heal ends (at once if already congruent). */
  activate(closure: StorePath): Promise<ActivationResult>
  /** Asks for a check soon; calls coalesce. */
  request(): void
  start(): void
  stop(): void
}

export interface ToldDrift {
  desired: StorePath
  kinds: DriftKind[]
}

interface Waiter {
  closure: StorePath
  resolve(result: ActivationResult): void
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const backoff = deps.healBackoff ?? createBackoff({ initialMs: 2000, maxMs: 300_000, jitter: "equal" })
  let desired = deps.initialDesired ?? null
  let phase: AgentPhase = desired ? "drifted" : "no-desired"
  let links: SystemLinks = { profile: null, current: null, booted: null }
  // Drift is told against a closure: drift from a new desired closure is news even in the same kinds.
  let lastDrift: (DriftState & { desired: StorePath }) | null = deps.initialDrift
    ? { ...deps.initialDrift, congruent: deps.initialDrift.kinds.length === 0, rebootRequired: false }
    : null
  let lastRebootKey: string | null = null
  let attempt = 0
  let retryAt = 0
  let retryTimer: Timer | null = null
  let forceHeal = false
  // A desired closure that just changed is a deploy, not drift: it is not reported as drift.detected
  // when a heal follows at once (the heal.* reports tell that story).
  let freshDesired = false
  let waiters: Waiter[] = []
  let dirty = true
  let stopped = true
  let wake: (() => void) | null = null
  const first = Promise.withResolvers<void>()

  /**
   * The drift the reports now stand for, against `target`. A heal ending after stop() may report
   * where nothing is written any more (the spool closes): what it tells is not taken as told.
   */
  const remember = (state: DriftState, target: StorePath) => {
    const changed = lastDrift?.desired !== target || driftChanged(lastDrift, state)
    lastDrift = { ...state, desired: target }
    if (changed && !stopped) deps.persistDrift?.({ desired: target, kinds: state.kinds })
  }

  const settle = (filter: (w: Waiter) => boolean, result: ActivationResult) => {
    const [done, rest] = [waiters.filter(filter), waiters.filter((w) => !filter(w))]
    waiters = rest
    for (const w of done) w.resolve(result)
  }

  const request = () => {
    dirty = true
    wake?.()
    wake = null
  }

  const clearRetry = () => {
    if (retryTimer) clearTimeout(retryTimer)
    retryTimer = null
  }

  const checkReboot = (state: DriftState, seen: SystemLinks) => {
    const key = state.rebootRequired ? `${seen.booted} ${seen.current}` : null
    if (key !== null && key !== lastRebootKey) {
      log.info("reboot required", { booted: seen.booted, current: seen.current })
      deps.report({ type: "reboot.required", data: { booted: seen.booted, current: seen.current } })
    }
    lastRebootKey = key
  }

  const check = async () => {
    const seen = await deps.nix.readLinks()
    // The links a check read and the phase it reached are published together: a heartbeat or a scrape
    // made during the awaits below would otherwise pair new links with the last check's phase (a node
    // shown running its desired closure while still "drifted").
    const publish = (next: AgentPhase, read: SystemLinks = seen) => {
      links = read
      phase = next
    }
    const target = desired
    if (target === null) {
      checkReboot(classifyDrift(null, seen, false), seen)
      publish("no-desired")
      return
    }
    const inStore = await deps.nix.inStore(target)
    // A desired closure set while this check awaited is judged by the next check (setDesired asked for
    // it): its `activate` force and freshness belong to it, and lent to this one they would heal the
    // node to the closure it replaced, past a rollback's hold.
    if (desired !== target) return
    const state = classifyDrift(target, seen, inStore)
    checkReboot(state, seen)
    if (state.congruent) {
      if (lastDrift && !lastDrift.congruent) {
        log.info("drift resolved without a heal", { desired: target })
        deps.report({ type: "drift.resolved", data: { desired: target, system: seen } })
      }
      remember(state, target)
      publish("congruent")
      attempt = 0
      retryAt = 0
      forceHeal = false
      freshDesired = false
      backoff.reset()
      clearRetry()
      settle((w) => w.closure === target, { success: true, output: `already running ${target}` })
      return
    }
    const heldUntil = forceHeal ? 0 : await deps.nix.deployHoldUntil()
    if (desired !== target) return
    if (heldUntil > Date.now()) {
      log.info("a push deploy holds this node; drift is neither reported nor healed", {
        until: new Date(heldUntil).toISOString(),
      })
      clearRetry()
      retryTimer = setTimeout(request, Math.min(heldUntil - Date.now() + 50, 60_000))
      publish(driftPhase(state))
      return
    }
    const willHeal = deps.autoHeal || forceHeal
    const news = lastDrift?.desired !== target || driftChanged(lastDrift, state)
    if (news && !(freshDesired && willHeal)) {
      log.warn("drift detected", { kinds: state.kinds, desired: target, ...seen })
      deps.report({ type: "drift.detected", data: { kinds: state.kinds, desired: target, system: seen } })
    }
    remember(state, target)
    freshDesired = false
    if (!willHeal) {
      publish(driftPhase(state))
      return
    }
    if (Date.now() < retryAt) {
      // Still waiting to retry a failed heal: the phase it left stands. A hold since took the retry's
      // timer for its own, so the retry's is set again here (the same time: harmless when it stood).
      publish(phase)
      clearRetry()
      retryTimer = setTimeout(request, retryAt - Date.now())
      return
    }
    forceHeal = false
    attempt++
    const thisAttempt = attempt
    publish("healing")
    first.resolve()
    deps.report({ type: "heal.started", data: { desired: target, attempt } })
    log.info("heal", { from: seen.current, to: target, attempt })
    const outcome = await healOnce({ nix: deps.nix, closure: target, links: seen, inStore })
    // A desired closure set during the heal reset the attempts, the backoff and the retry for itself:
    // this outcome is then only reported, as its own closure's, and the next check (already asked for)
    // judges the new closure, unheld by a failure that was not its own.
    const stillDesired = desired === target
    // Until that check reads the links, a heartbeat or a scrape sees what this heal left: nothing heals
    // now, and the links it moved. Whether the new closure is in the store is that check's to say.
    if (!stillDesired && desired !== null)
      publish(driftPhase(classifyDrift(desired, outcome.links, true)), outcome.links)
    // An `activate` of this closure that came during the heal is answered by it below, and its force
    // (past a hold, past --no-auto-heal) is spent with it: a retry is auto-heal's own.
    if (stillDesired) forceHeal = false
    if (outcome.success) {
      deps.report({
        type: "heal.succeeded",
        data: { desired: target, attempt: thisAttempt, durationMs: outcome.durationMs },
      })
      if (stillDesired) {
        remember(classifyDrift(target, outcome.links, true), target)
        publish("congruent", outcome.links)
        attempt = 0
        backoff.reset()
      }
      settle((w) => w.closure === target, { success: true, output: outcome.output })
      return
    }
    // With auto-heal off, a heal that an `activate` command forced is not retried behind the operator's back.
    const retryInMs = deps.autoHeal && stillDesired ? backoff.next() : null
    if (stillDesired) {
      // What a heal left half-done (the profile set, the switch refused) is told by heal.failed: the
      // retry's check must not report it again as drift. A failed switch that still left the node on
      // its closure keeps the drift before it, so the next check reports it resolved.
      const left = classifyDrift(target, outcome.links, !outcome.missingClosure)
      if (!left.congruent) remember(left, target)
      publish(outcome.missingClosure ? "missing-closure" : "heal-failed", outcome.links)
    }
    deps.report({
      type: "heal.failed",
      data: {
        desired: target,
        attempt: thisAttempt,
        durationMs: outcome.durationMs,
        error: outcome.error,
        output: outcome.output,
        retryInMs,
      },
    })
    log.error("heal failed", { desired: target, attempt: thisAttempt, error: outcome.error, retryInMs })
    settle((w) => w.closure === target, {
      success: false,
      output: `${outcome.error}\n${outcome.output}`.slice(0, 65_536),
    })
    if (retryInMs === null) return
    retryAt = Date.now() + retryInMs
    clearRetry()
    retryTimer = setTimeout(request, retryInMs)
  }

  const loop = async () => {
    while (!stopped) {
      if (!dirty) await new Promise<void>((resolve) => (wake = resolve))
      if (stopped) return
      dirty = false
      try {
        await check()
      } catch (err) {
        log.error("check failed", { error: err })
      }
      first.resolve()
      deps.onPhase?.(phase)
    }
  }

  /** When the latest `activate` arrived (performance.now()). */
  let activatedAt = Number.NEGATIVE_INFINITY
  const setDesired = (closure: StorePath, source: string, askedAt?: number) => {
    if (closure === desired) return
    if (askedAt !== undefined && askedAt < activatedAt) {
      log.info("ignoring a desired closure asked for before the latest activation", { closure, source })
      return
    }
    log.info("desired closure", { from: desired, to: closure, source })
    deps.persistDesired(closure, source)
    settle((w) => w.closure !== closure, { success: false, output: `superseded by ${closure}` })
    desired = closure
    // The force an `activate` gave belongs to the activation just superseded; `activate` forces its own.
    forceHeal = false
    attempt = 0
    retryAt = 0
    freshDesired = true
    backoff.reset()
    clearRetry()
    request()
  }

  return {
    get desired() {
      return desired
    },
    get phase() {
      return phase
    },
    get links() {
      return links
    },
    checked: first.promise,
    setDesired,
    activate(closure) {
      activatedAt = performance.now()
      setDesired(closure, "command")
      forceHeal = true
      retryAt = 0
      request()
      return new Promise((resolve) => waiters.push({ closure, resolve }))
    },
    request,
    start() {
      if (!stopped) return
      stopped = false
      void loop()
    },
    // A heal in flight is not awaited: under systemd the switch runs in its own unit and may be what is
    // stopping us (it restarts chimera-agent.service); waiting for it would deadlock the activation.
    stop() {
      stopped = true
      clearRetry()
      wake?.()
      settle(() => true, { success: false, output: "agent stopped before the activation finished" })
    },
  }
}
