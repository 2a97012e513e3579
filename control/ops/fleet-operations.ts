// The fleet operations the control plane runs for every door (API, MCP, the dashboard, the AI chat):
// deploy, roll back and check congruence, each once. Deploys and rollbacks reach nodes over SSH with
// the control plane's own key ([ssh]) and only the nodes its configuration names ([fleet.nodes], by
// name or @tag): the API never dials an address a caller supplies. A target that is an enrolled node
// gets the closure it now runs as its desired one, so its agent keeps it instead of healing it back.
// Congruence checks are fleet-congruence.ts's.
import type { StorePath } from "../../protocol/ids.ts"
import { createLogger } from "../../protocol/log.ts"
import type { ReplicaAlive } from "../adapters/replica-liveness.ts"
import type { DeploymentStore } from "../adapters/store/deployment-store.ts"
import type { CommandTargets } from "../domain/command-service.ts"
import { type DeployOptions, deploy } from "../domain/deploy.ts"
import {
  type DeploymentRecord,
  deploymentId,
  deploymentStatus,
  type TargetResult,
  targetResult,
} from "../domain/deployment-record.ts"
import { ChimeraError, conflict, invalid, notFound } from "../domain/errors.ts"
import type { Fleet } from "../domain/fleet.ts"
import type { HealthCheck } from "../domain/health-check.ts"
import { mapLimit } from "../domain/map-limit.ts"
import type { NodeRecord } from "../domain/node.ts"
import type { NixPort, Target } from "../domain/operation-ports.ts"
import type { Clock } from "../domain/ports.ts"
import { type RollbackResult, rollback } from "../domain/rollback.ts"
import { type CongruenceRequest, closureOf, congruenceOf, sshTargetsOf } from "./fleet-congruence.ts"
import { pullDeploy } from "./pull-deploy.ts"
import { createRunningDeploys } from "./running-deploys.ts"
import { untilStored } from "./until-stored.ts"

const log = createLogger("operations")

/** How much longer than a push deploy's confirm timeout an agent may take to report the new closure. */
const PULL_GRACE_SECONDS = 60

export interface DeployRequest {
  targets: string[]
  /** A Nix file on the control plane's host to build, or a closure already in its store. */
  configPath?: string
  closure?: StorePath
  command: string | null
  session: string
  healthChecks: HealthCheck[]
  healthTimeoutSeconds: number
  confirmTimeoutSeconds: number
  activationTimeoutSeconds: number
  dryRun: boolean
  force: boolean
}

export interface FleetOperationsDeps {
  fleet: Fleet
  deployments: DeploymentStore
  nix: NixPort
  /** The nodes this control plane reaches over SSH; null when its configuration names none. */
  targets: CommandTargets | null
  clock: Clock
  /** This control plane's replica name, put in each deploy's start (replica-liveness.ts). */
  replica?: string
  /** Whether the replica that started a deploy still runs; without it, a deploy elsewhere is `running`. */
  replicaAlive?: ReplicaAlive
}

/**
 * A deploy without a record yet: running (its targets' progress so far), or interrupted, with the
 * reason: the control plane running it stopped before it finished.
 */
export type UnfinishedDeployment =
  | (Unfinished & { status: "running" })
  | (Unfinished & { status: "interrupted"; reason: string })

interface Unfinished {
  id: string
  createdAt: string
  targets: string[]
  progress: Record<string, string>
}

const INTERRUPTED =
  "the control plane that ran it stopped before it finished; check the targets (chimera nodes) before deploying again"

export function createFleetOperations(deps: FleetOperationsDeps) {
  const { fleet, deployments, nix, clock } = deps
  const running = createRunningDeploys()

  const executorOrThrow = () => {
    if (!deps.targets) throw invalid("this control plane reaches no nodes over SSH")
    return deps.targets.executor
  }

  const sshTargets = (specs: string[]): Target[] => sshTargetsOf(deps.targets, specs)

  /**
   * SSH targets ([fleet.nodes] names and tags) and enrolled nodes the control plane does not reach over
   * SSH, which deploy through their agents; any other name is an error that lists what is known.
   */
  const splitTargets = async (specs: string[]) => {
    const ssh: Target[] = []
    const pulled: NodeRecord[] = []
    for (const spec of specs) {
      const found = deps.targets?.resolveAll(spec) ?? []
      if (found.length > 0) {
        for (const t of found) if (!ssh.some((o) => o.name === t.name)) ssh.push(t)
        continue
      }
      const node = spec.startsWith("@") ? null : await fleet.findNode(spec)
      if (!node)
        throw invalid(
          `unknown target ${JSON.stringify(spec)}: neither a node of [fleet.nodes] (${deps.targets?.names().join(", ") || "none configured"}) nor an enrolled node`,
        )
      if (!pulled.some((n) => n.id === node.id)) pulled.push(node)
    }
    return { ssh, pulled }
  }

  /** Makes `closure` the desired state of `target` when it names an enrolled node; false otherwise. */
  const publishDesired = async (target: string, closure: StorePath): Promise<boolean> => {
    try {
      await fleet.setDesired(target, closure)
      return true
    } catch (error) {
      if (error instanceof ChimeraError && error.code === "NOT_FOUND") return false
      throw error
    }
  }

  async function begin(req: DeployRequest, actor: string): Promise<{ id: string }> {
    const { ssh, pulled } = await splitTargets(req.targets)
    if (pulled.length > 0 && req.command)
      throw invalid(
        `${pulled.map((n) => n.id).join(", ")}: reached through their agents only, where no command can be started; name [fleet.nodes] targets, or leave out the command`,
      )
    const id = deploymentId(clock.now().toISOString())
    const createdAt = clock.now().toISOString()
    const build = await closureOf(nix, req)
    running.refuseIfStopping()
    const names = [...ssh.map((t) => t.name), ...pulled.map((n) => n.id)]
    await fleet.note("deployment.started", null, {
      id,
      actor,
      closure: build.outPath,
      targets: names,
      ...(deps.replica ? { replica: deps.replica } : {}),
    })
    const progress = (target: string, phase: string, message: string) => {
      running.progress(id, target, `${phase}: ${message}`)
      // Filed under its target, a [fleet.nodes] name or an enrolled node's id (the names nodes go by
      // everywhere, as in publishDesired), so a node's events show its deploys (`events --node`).
      void fleet.note("deployment.progress", target, { id, target, phase, message }).catch(() => {})
    }
    const overSsh =
      ssh.length === 0
        ? Promise.resolve(null)
        : deploy(
            {
              id,
              targets: ssh,
              configPath: req.configPath ?? req.closure ?? "",
              command: req.command,
              session: req.session as DeployOptions["session"],
              dryRun: req.dryRun,
              force: req.force,
              confirmTimeoutSeconds: req.confirmTimeoutSeconds,
              activationTimeoutSeconds: req.activationTimeoutSeconds,
              healthChecks: req.healthChecks,
              healthTimeoutSeconds: req.healthTimeoutSeconds,
              useSubstitutes: false,
              parallel: 10,
            },
            {
              nix: { ...nix, build: async () => build },
              exec: executorOrThrow(),
              onProgress: progress,
              onConfirmed: req.dryRun
                ? undefined
                : async (target, closure) => void (await publishDesired(target, closure)),
            },
          )
    const throughAgents = mapLimit(pulled, 50, (node) =>
      pullDeploy(fleet, node, {
        closure: build.outPath,
        dryRun: req.dryRun,
        force: req.force,
        timeoutSeconds: req.confirmTimeoutSeconds + PULL_GRACE_SECONDS,
        clock,
        signal: running.signal,
        onProgress: (target, message) => progress(target, "activate", message),
      }),
    )
    const recordOf = (targets: TargetResult[], status: DeploymentRecord["status"]): DeploymentRecord => ({
      id,
      kind: "deploy",
      createdAt,
      finishedAt: clock.now().toISOString(),
      configPath: req.configPath ?? build.outPath,
      closure: build.outPath,
      hash: build.hash,
      isSystem: build.isSystem,
      command: req.command,
      session: req.session,
      status,
      targets,
    })
    const run = Promise.all([overSsh, throughAgents])
      .then(async ([pushed, agents]): Promise<DeploymentRecord> => {
        const targets = [...(pushed?.targets ?? []), ...agents]
        const record = recordOf(targets, deploymentStatus(targets, req.dryRun))
        // The deploy has ended and only this process knows how: a database away this moment (a
        // restart) must not lose that, nor leave the deploy `interrupted` here and `running` elsewhere.
        const stored = { signal: running.signal, fields: { id, status: record.status } }
        await untilStored("saving a deploy's record", () => deployments.save(record), stored)
        await untilStored(
          "noting a deploy's end",
          () => fleet.note("deployment.finished", null, { id, status: record.status, closure: record.closure }),
          stored,
        )
        return record
      })
      .catch(async (error: Error) => {
        log.error("deploy failed", { id, error })
        // Recorded as failed, with why: with no record, its replica would call it interrupted, "stopped
        // before it finished", and the others running. What each target reached is not known here.
        const why = `the deploy ended on an error before its targets' outcomes were known (${error.message}); check the targets (chimera nodes) before deploying again`
        const targets = names.map((target) => targetResult(target, "failed", why, new Date(createdAt), clock.now()))
        const stored = { signal: running.signal, fields: { id, status: "failed" } }
        await untilStored(
          "saving a failed deploy's record",
          () => deployments.save(recordOf(targets, "failed")),
          stored,
        )
          .then(() => fleet.note("deployment.finished", null, { id, status: "failed", error: error.message }))
          .catch((noted: unknown) => log.error("a failed deploy's record was not kept", { id, error: noted }))
        throw error
      })
    running.track(id, { startedAt: createdAt, targets: names, progress: {}, done: run })
    return { id }
  }

  return {
    /**
     * Starts a deploy and answers at once with its id; its progress goes out as events, and its record
     * is saved when it ends (until then `get` answers `running` with the targets' progress so far).
     */
    startDeploy: (req: DeployRequest, actor: string): Promise<{ id: string }> => running.admit(() => begin(req, actor)),

    /** For a graceful stop (RunningDeploys.settled). */
    settled: (graceMs: number) => running.settled(graceMs),

    async rollback(req: { targets: string[]; generation: number | null; activationTimeoutSeconds: number }) {
      const targets = sshTargets(req.targets)
      const results = await rollback(executorOrThrow(), targets, {
        generation: req.generation,
        parallel: 10,
        activationTimeoutSeconds: req.activationTimeoutSeconds,
      })
      const out: (RollbackResult & { desired: boolean })[] = []
      for (const r of results)
        out.push({ ...r, desired: r.ok && r.path ? await publishDesired(r.target, r.path) : false })
      return out
    },

    /** Which targets run the closure: enrolled nodes by their agents' word, the rest over SSH. */
    congruence: (req: CongruenceRequest) => congruenceOf(deps, req),

    /**
     * Keeps a deployment another process ran (the CLI, with an operator's own keys) and publishes what
     * it confirmed. `by` is the reporting principal's subject: only it may write that id again.
     */
    async record(record: DeploymentRecord, by: string) {
      const refused = await deployments.record(record, by)
      if (refused === "control-plane")
        throw conflict(
          `deployment ${record.id} was run by the control plane, or recorded before records named who reported them, and no caller may write it again: report your deployment under a new id`,
        )
      if (refused === "another-principal")
        throw conflict(
          `deployment ${record.id} was recorded by another user or API token: only whoever first recorded an id may record it again; report your deployment under a new id`,
        )
      await fleet.note("deployment.finished", null, {
        id: record.id,
        status: record.status,
        closure: record.closure,
        recorded: true,
      })
    },

    get: async (id: string): Promise<DeploymentRecord | UnfinishedDeployment> => {
      const live = running.get(id)
      if (live)
        return { id, status: "running", createdAt: live.startedAt, targets: live.targets, progress: live.progress }
      const record = await deployments.get(id)
      if (record) return record
      // Started through another replica (one database, several control planes) and still running there.
      const elsewhere = await deployments.runningElsewhere(id)
      if (!elsewhere) throw notFound(`deployment ${JSON.stringify(id)}`)
      const { replica, ...view } = elsewhere
      if (replica === null) return view // started by a control plane from before replicas were named
      // Started here, and no longer running here (nor recorded): it ended without a word.
      const gone =
        replica === deps.replica
          ? !running.get(id) && (await deployments.get(id)) === null
          : (await deps.replicaAlive?.(replica)) === false
      return gone ? { ...view, status: "interrupted", reason: INTERRUPTED } : view
    },
    list: (limit: number) => deployments.list(limit),
  }
}

export type FleetOperations = ReturnType<typeof createFleetOperations>
