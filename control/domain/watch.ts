// Agentless drift detection: the expected closure comes from building the configuration, the
// actual one from each node's links over SSH; a drifted node is healed by redeploying (with magic
// rollback), and every pass that found drift is recorded as a `heal` deployment. `chimera watch
// --once` maps a pass to an exit code for cron and systemd timers.
import { type Congruence, checkCongruence } from "./congruence.ts"
import { type DeployDeps, deploy } from "./deploy.ts"
import type { DeploymentRecord } from "./deployment-record.ts"
import type { HealthCheck } from "./health-check.ts"
import type { Target } from "./operation-ports.ts"

export interface WatchOptions {
  targets: Target[]
  configPath: string
  session: string
  parallel: number
  confirmTimeoutSeconds: number
  healthChecks: HealthCheck[]
  healthTimeoutSeconds: number
}

export interface WatchPass {
  at: string
  expected: string
  congruence: Congruence[]
  heal: DeploymentRecord | null
  /** 0 congruent, 1 drift found and healed, 2 drift not healed (a heal failed or a node was unreachable). */
  exitCode: 0 | 1 | 2
}

export async function watchOnce(opts: WatchOptions, deps: DeployDeps): Promise<WatchPass> {
  const at = new Date().toISOString()
  const build = await deps.nix.build(opts.configPath)
  const congruence = await checkCongruence(deps.exec, opts.targets, build.outPath)
  const drifted = congruence.filter((c) => c.status === "drifted").map((c) => c.target)
  const unreachable = congruence.some((c) => c.status === "unreachable")
  if (drifted.length === 0)
    return { at, expected: build.outPath, congruence, heal: null, exitCode: unreachable ? 2 : 0 }

  const heal = await deploy(
    {
      targets: drifted,
      configPath: opts.configPath,
      command: null,
      session: opts.session,
      dryRun: false,
      force: true,
      confirmTimeoutSeconds: opts.confirmTimeoutSeconds,
      healthChecks: opts.healthChecks,
      healthTimeoutSeconds: opts.healthTimeoutSeconds,
      useSubstitutes: false,
      parallel: opts.parallel,
      kind: "heal",
    },
    deps,
  )
  const healed = heal.targets.every((t) => t.status === "deployed")
  return { at, expected: build.outPath, congruence, heal, exitCode: healed && !unreachable ? 1 : 2 }
}

/** A cron expression (with seconds) for an interval in seconds, when one exists. */
export function intervalToCron(seconds: number): string | null {
  if (!Number.isInteger(seconds) || seconds < 1) return null
  if (seconds < 60 && 60 % seconds === 0) return `*/${seconds} * * * * *`
  if (seconds % 60 === 0 && seconds < 3600 && 60 % (seconds / 60) === 0) return `0 */${seconds / 60} * * * *`
  if (seconds % 3600 === 0 && 24 % (seconds / 3600) === 0) return `0 0 */${seconds / 3600} * * *`
  return null
}
