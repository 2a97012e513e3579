// Deploy: build a configuration once, then on every target in parallel plan, copy, activate with
// magic rollback, start the command, check health and confirm over a fresh connection (activation.ts
// explains the watchdog). Each target's failure is data on its result, never an exception that stops
// the others; the whole run becomes one DeploymentRecord (deployment-record.ts).
//
// Once `signal` is aborted (Ctrl-C) nothing further changes a node or decides it: no target starts, and
// one under way stops before its next copy, activation, command, health check or confirmation. What
// was sent goes on on the node: an activation finishes there and, unconfirmed, its watchdog rolls it
// back; a confirmation sent is awaited (not sent again), and if it was taken its closure is published.
// A target so stopped gets no onDone: it is left where its last onPhase said.
import { MAX_DEPLOY_HOLD_SECONDS } from "../../protocol/agent.ts"
import type { SessionId, StorePath } from "../../protocol/ids.ts"
import {
  ABORT_NO_CLAIM_SAYS,
  abortScript,
  activateScript,
  CHIMERA_PROFILE,
  confirmScript,
  MISSING_PATHS_SCRIPT,
  shq,
  switchBackSeconds,
  undecidedDeploysScript,
} from "./activation.ts"
import { activationFailure } from "./activation-failure.ts"
import { DEFAULT_ACTIVATION_TIMEOUT_SECONDS, SWITCH_SLACK_SECONDS } from "./bounded-switch.ts"
import {
  type DeploymentRecord,
  deploymentId,
  deploymentStatus,
  type Phase,
  type TargetResult,
  type TargetStatus,
  targetResult,
} from "./deployment-record.ts"
import { type HealthCheck, runHealthChecks } from "./health-check.ts"
import { mapLimit } from "./map-limit.ts"
import { undecidedText } from "./node-claim.ts"
import type { BuildResult, NixPort, RemoteExecutorPort, Target } from "./operation-ports.ts"
import { startRemoteCommand } from "./remote-command.ts"

export interface DeployOptions {
  targets: Target[]
  configPath: string
  command: string | null
  session: SessionId
  dryRun: boolean
  /** Deploy to targets that already run the closure too. */
  force: boolean
  confirmTimeoutSeconds: number
  /** How long the switch may run before it is stopped and rolled back (DEFAULT_ACTIVATION_TIMEOUT_SECONDS). */
  activationTimeoutSeconds?: number
  healthChecks: HealthCheck[]
  healthTimeoutSeconds: number
  useSubstitutes: boolean
  parallel: number
  kind?: "deploy" | "heal"
  /** The record's id, when the caller has already handed it out (the API answers 202 with it). */
  id?: string
}

export interface DeployDeps {
  nix: NixPort
  exec: RemoteExecutorPort
  /** Progress for people: one call per phase a target enters or ends. */
  onProgress?: (target: string, phase: Phase, message: string) => void
  /**
   * Called as soon as a target is confirmed (or found up to date), before the others finish: the CLI
   * publishes the closure as the node's desired state here, while the node's deploy hold still stands.
   */
  onConfirmed?: (target: string, closure: StorePath) => Promise<void>
  /**
   * Called as a target enters each phase, with its result as it grows (timings are added as phases end),
   * and once more when it is over: the CLI says from these where an interrupted deploy left each target.
   */
  onPhase?: (target: string, phase: Phase, sofar: Readonly<TargetResult>) => void
  onDone?: (result: Readonly<TargetResult>) => void
  signal?: AbortSignal
}

const CONFIRM_TIMEOUT_MS = 15_000

/** The confirmation hook's failure is that target's note, never the end of the whole deploy. */
async function publish(deps: DeployDeps, target: string, closure: StorePath, say: (p: Phase, m: string) => void) {
  try {
    await deps.onConfirmed?.(target, closure)
  } catch (error) {
    say("confirm", `publishing the desired closure failed: ${(error as Error).message}`)
  }
}

const lastLines = (s: string, n = 20) => s.trim().split("\n").slice(-n).join("\n")

export async function deploy(opts: DeployOptions, deps: DeployDeps): Promise<DeploymentRecord> {
  const createdAt = new Date().toISOString()
  const id = opts.id ?? deploymentId(createdAt)
  const build = await deps.nix.build(opts.configPath)
  const requisites = await deps.nix.requisites(build.outPath)
  // The command runs in nix-shell on the node, which needs the configuration's derivation there.
  const drv = opts.command ? await deps.nix.instantiate(opts.configPath) : null

  const stopped = new WeakSet<TargetResult>()
  const targets = await mapLimit(opts.targets, opts.parallel, async (target) => {
    if (deps.signal?.aborted) {
      const now = new Date()
      return targetResult(target.name, "failed", "not started: the deploy was interrupted", now, now)
    }
    const result = await runTarget(target, { build, requisites, drv, opts, deps, id, stopped })
    if (!stopped.has(result)) deps.onDone?.(result)
    return result
  })
  const status = deploymentStatus(targets, opts.dryRun)
  return {
    id,
    kind: opts.kind ?? "deploy",
    createdAt,
    finishedAt: new Date().toISOString(),
    configPath: opts.configPath,
    closure: build.outPath,
    hash: build.hash,
    isSystem: build.isSystem,
    command: opts.command,
    session: opts.session,
    status,
    targets,
  }
}

interface RunContext {
  build: BuildResult
  requisites: { path: StorePath; narBytes: number }[]
  drv: string | null
  opts: DeployOptions
  deps: DeployDeps
  id: string
  /** Results of targets the signal stopped mid-way. */
  stopped: WeakSet<TargetResult>
}

async function runTarget(target: Target, ctx: RunContext): Promise<TargetResult> {
  const { build, opts, deps, id } = ctx
  const { exec } = deps
  const t0 = performance.now()
  const now = new Date()
  const r = targetResult(target.name, "failed", null, now, now)
  const say = (phase: Phase, message: string) => {
    r.log.push(`${phase}: ${message}`)
    deps.onProgress?.(target.name, phase, message)
  }
  const phase = async <T>(name: Phase, fn: () => Promise<T>): Promise<T> => {
    const startedAt = new Date().toISOString()
    const p0 = performance.now()
    deps.onPhase?.(target.name, name, r)
    try {
      return await fn()
    } finally {
      r.timings.push({ phase: name, startedAt, ms: Math.round(performance.now() - p0) })
    }
  }
  const fail = (message: string, status: TargetStatus = "failed") => {
    r.status = status
    r.error = message
    r.ms = Math.round(performance.now() - t0)
    return r
  }
  // Asked before each step that changes the node or decides it: never one after Ctrl-C.
  const interrupted = () => deps.signal?.aborted === true
  const stop = (before: string) => {
    ctx.stopped.add(r)
    return fail(`interrupted before ${before}`)
  }

  // 1. Plan: what runs there now, and what a copy has to send. An earlier deploy still waiting for its
  // confirmation is let finish first (undecidedDeploysScript says why); a dry run only says so, since
  // it changes nothing, and plans from the node as it is.
  let undecidedEarlier = false
  try {
    await phase("plan", async () => {
      const undecided = async (seconds: number) => {
        // The look alone keeps the executor's own time-out, which is also how long connecting may take.
        const res = await exec.exec(
          target,
          undecidedDeploysScript(seconds),
          seconds > 0 ? { timeoutMs: (seconds + 60) * 1000 } : {},
        )
        if (res.failure) throw new Error(res.failure.message)
        return res.stdout.split("\n").filter(Boolean)
      }
      const earlier = await undecided(0)
      if (earlier.length > 0 && opts.dryRun) {
        undecidedEarlier = true
        say(
          "plan",
          `a deploy would wait for ${undecidedText(earlier)}; this plan is of the node as it is now, which may yet change`,
        )
      } else if (earlier.length > 0) {
        say("plan", `waiting for ${undecidedText(earlier)}`)
        const still = await undecided(MAX_DEPLOY_HOLD_SECONDS)
        if (still.length > 0)
          throw new Error(`${still.join(", ")} still undecided on this node after ${MAX_DEPLOY_HOLD_SECONDS} s`)
      }
      r.before = await exec.systemState(target)
      const paths = `${ctx.requisites.map((p) => p.path).join("\n")}\n`
      // What comes back is a subset of these paths: the control plane's 1 MiB output cap would cut the
      // list of a fresh node missing more than about 11,000 of them, and undercount the copy.
      const missing = await exec.exec(target, MISSING_PATHS_SCRIPT, {
        stdin: paths,
        maxOutputBytes: Buffer.byteLength(paths) + 4096,
      })
      if (missing.failure) throw new Error(missing.failure.message)
      const lacking = new Set(missing.stdout.split("\n").filter((l) => l.startsWith("/nix/store/")))
      const narBytes = ctx.requisites.filter((p) => lacking.has(p.path)).reduce((sum, p) => sum + p.narBytes, 0)
      r.copy = { missingPaths: lacking.size, narBytes }
    })
  } catch (error) {
    return fail(`plan: ${(error as Error).message}`)
  }
  const upToDate = build.isSystem
    ? r.before?.profile === build.outPath && r.before?.current === build.outPath
    : (await exec.exec(target, `readlink -f ${shq(CHIMERA_PROFILE)}`)).stdout.trim() === build.outPath
  // A dry run does not call a node up to date on a closure an undecided deploy may yet take back.
  const copy = `${r.copy?.missingPaths ?? 0} path(s) to copy, ${r.copy?.narBytes ?? 0} bytes`
  const onIt = undecidedEarlier
    ? "running it, not yet for good: up to date once that deploy is confirmed"
    : "up to date"
  say("plan", upToDate ? onIt : copy)
  if (upToDate && !opts.force && !undecidedEarlier) {
    if (!opts.dryRun && !interrupted()) await publish(deps, target.name, build.outPath, say)
    r.status = "up-to-date"
    r.ms = Math.round(performance.now() - t0)
    return r
  }
  if (opts.dryRun) {
    r.status = "planned"
    r.ms = Math.round(performance.now() - t0)
    return r
  }

  // 2. Copy the closure (and the derivation, when a command will run in nix-shell there).
  if (interrupted()) return stop("the copy")
  const copied = await phase("copy", async () => {
    const out = await exec.syncClosure(target, build.outPath, { useSubstitutes: opts.useSubstitutes })
    if (!out.ok || !ctx.drv) return out
    return exec.syncClosure(target, ctx.drv as StorePath, { useSubstitutes: opts.useSubstitutes })
  })
  if (!copied.ok)
    return fail(
      `copy: ${copied.failure?.message ?? lastLines(copied.stderr, 5)}; nothing was activated: the node is unchanged`,
    )
  say("copy", `copied in ${r.timings.at(-1)?.ms} ms`)

  // 3. Arm the watchdog and activate.
  if (interrupted()) return stop("the activation")
  const activationSeconds = opts.activationTimeoutSeconds ?? DEFAULT_ACTIVATION_TIMEOUT_SECONDS
  const activated = await phase("activate", () =>
    exec.exec(
      target,
      activateScript({
        deployId: id,
        closure: build.outPath,
        isSystem: build.isSystem,
        confirmTimeoutSeconds: opts.confirmTimeoutSeconds,
        activationTimeoutSeconds: activationSeconds,
      }),
      { timeoutMs: (activationSeconds + SWITCH_SLACK_SECONDS) * 1000 },
    ),
  )
  const prev = /^previous (\d*) (\S*)$/m.exec(activated.stdout)
  if (prev?.[1] && prev[2]) r.previous = { generation: Number(prev[1]), path: prev[2] as StorePath }
  // The activation names the previous generation first, in its own directory on the node: none came back
  // from a node with no generation yet, or from one where that directory could not be made (a full
  // /run), which failed before it changed anything. The two are told apart by what the node runs now.
  const noPrevious = async (why: string) => {
    const now = await exec.systemState(target).catch(() => null)
    const before = r.before
    if (now && before && now.profile === before.profile && now.current === before.current)
      return fail(`${why}; the node is unchanged: it still runs ${before.current ?? "no system"}`, "rolled-back")
    return fail(`${why}; the node had no previous generation to roll back to and stays on the new one`)
  }
  const abort = async (why: string, at: Phase) => {
    if (!r.previous) return noPrevious(why)
    const { generation } = r.previous
    // It switches back, or waits for the watchdog's switch back: either has the activation's bound.
    const back = await exec.exec(target, abortScript(id, r.previous, build.isSystem, activationSeconds), {
      timeoutMs: (switchBackSeconds(activationSeconds) + SWITCH_SLACK_SECONDS) * 1000,
    })
    if (!back.ok) {
      // A watchdog still counting down the confirm window tries again when it ends; after a failed
      // activation it has already stood down, or decided itself (and failed as this did).
      // One that could not claim the rollback at all (no room under /run) left it to the watchdog, and said so.
      const retried = at !== "activate" && !back.stdout.includes("the watchdog decided")
      const next = back.stderr.includes(ABORT_NO_CLAIM_SAYS)
        ? `see where it is: chimera generations --targets ${target.name}`
        : retried
          ? "the node's watchdog tries again when the confirm timeout passes"
          : `the node may be left between generations: see chimera generations --targets ${target.name}, then roll it back by hand: chimera rollback --targets ${target.name} --generation ${generation}`
      return fail(
        `${why}; rolling back failed too (${back.failure?.message ?? lastLines(back.stderr || back.stdout, 5)}); ${next}`,
      )
    }
    // An activation that failed before it changed anything (a full disk under the profiles) is not
    // switched back: the node never left its generation.
    say(
      at,
      /^unchanged$/m.test(back.stderr)
        ? `not rolled back: the node is still on generation ${generation}, which the failed activation did not change`
        : `rolled back to generation ${generation}`,
    )
    return fail(why, "rolled-back")
  }
  if (!activated.ok) {
    const failed = activationFailure(activated, {
      target: target.name,
      confirmSeconds: opts.confirmTimeoutSeconds,
      activationSeconds,
    })
    if (failed.kind === "refused") return fail(failed.why, "refused")
    if (failed.kind === "no-answer") return fail(failed.why)
    const { why } = failed
    // Switching it back from here would be one more activation after Ctrl-C; its watchdog does it.
    if (interrupted())
      return fail(
        `${why}; the deploy was interrupted, so its watchdog, not this command, rolls it back to the previous generation (at once, as the switch failed)`,
      )
    return abort(why, "activate")
  }
  // Unconfirmed, its watchdog rolls it back when the confirm timeout passes.
  if (interrupted()) return stop("the confirmation")
  say(
    "activate",
    `activated ${build.hash.slice(0, 12)}${r.previous ? ` (previous generation ${r.previous.generation})` : ""}`,
  )

  // 4. Start the command in the node's persistent session, inside nix-shell.
  if (opts.command && ctx.drv) {
    const started = await phase("command", () =>
      startRemoteCommand(exec, target, { session: opts.session, drv: ctx.drv!, command: opts.command!, id }),
    )
    if (interrupted()) return stop("the confirmation")
    if (!started.ok) return abort(`command: ${started.error}`, "command")
    say("command", `started in session ${opts.session}`)
  }

  // 5. Health checks, then 6. confirm over a new connection.
  if (opts.healthChecks.length > 0) {
    const health = await phase("health", () =>
      runHealthChecks(opts.healthChecks, target, exec, opts.healthTimeoutSeconds * 1000, (failure) =>
        say("health", `${failure}; retrying until it passes or ${opts.healthTimeoutSeconds} s pass, then rolling back`),
      ),
    )
    if (interrupted()) return stop("the confirmation")
    if (!health.ok) return abort(`health check failed: ${health.detail}`, "health")
    say("health", health.detail)
  }
  // Confirm over a new connection; once more if the answer is lost, which the claim makes harmless,
  // unless Ctrl-C came meanwhile: the first one may not have been taken, and none is sent after it.
  if (interrupted()) return stop("the confirmation")
  const confirmOnce = () =>
    exec.exec(target, confirmScript(id, build.isSystem), { fresh: true, timeoutMs: CONFIRM_TIMEOUT_MS })
  const confirmed = await phase("confirm", async () => {
    const first = await confirmOnce()
    return first.failure && !interrupted() ? confirmOnce() : first
  })
  if (!confirmed.ok) {
    if (confirmed.failure && interrupted())
      return fail(
        `confirm: ${confirmed.failure.message}; the deploy was interrupted, so it was not sent again: if it reached the node, the node is confirmed on the new closure; otherwise its watchdog rolls it back ${opts.confirmTimeoutSeconds} s after activation. See where it is: chimera generations --targets ${target.name}`,
      )
    if (confirmed.exitCode === 3) return fail(`confirm: ${lastLines(confirmed.stdout, 1)}`, "rolled-back")
    const why = confirmed.failure?.message ?? lastLines(confirmed.stdout || confirmed.stderr, 3)
    return r.previous
      ? fail(
          `confirm: ${why}; unconfirmed, the node rolls back by itself ${opts.confirmTimeoutSeconds} s after activation`,
          "rolled-back",
        )
      : fail(`confirm: ${why}; the node had no previous generation, so it stays on the new one unconfirmed`)
  }
  const running = lastLines(confirmed.stdout, 1)
  if (running !== build.outPath)
    return fail(`confirm: confirmed, but the node runs ${running || "nothing"}, not ${build.outPath}`)
  await publish(deps, target.name, build.outPath, say)
  say("confirm", "confirmed")
  r.status = "deployed"
  r.ms = Math.round(performance.now() - t0)
  return r
}
