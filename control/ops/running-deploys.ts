// The deploys one control plane runs: each by its id until it ends (its targets and their progress,
// which `get` answers while there is no record), how many may run at once, and the stop. A stop ends
// the waits of deploys through agents at once (their signal) and waits a bounded time for the rest.
import { createLogger } from "../../protocol/log.ts"
import type { DeploymentRecord } from "../domain/deployment-record.ts"
import { ChimeraError } from "../domain/errors.ts"

const log = createLogger("operations")

/**
 * Deploys one control plane runs at once. Each may have many targets; past this, a deploy is refused
 * (429) until one ends, so that requests cannot pile up waits (a deploy through an agent may wait an
 * hour for its report) faster than they end.
 */
export const MAX_RUNNING_DEPLOYS = 16

export interface RunningDeploy {
  startedAt: string
  targets: string[]
  /** Each target's latest phase and message. */
  progress: Record<string, string>
  done: Promise<DeploymentRecord>
}

const stoppingError = () =>
  new ChimeraError("PROVIDER_UNAVAILABLE", "this control plane is stopping; start the deploy on another")

export function createRunningDeploys() {
  const running = new Map<string, RunningDeploy>()
  /** Deploys admitted and not yet running (their closure still building). */
  const starting = new Set<Promise<unknown>>()
  const stopping = new AbortController()

  return {
    /** Aborted when the control plane stops: deploys through agents stop waiting for their reports. */
    signal: stopping.signal,

    /** Runs `begin` (a deploy up to its start) in a slot of its own; refused while stopping or full. */
    async admit<T>(begin: () => Promise<T>): Promise<T> {
      if (stopping.signal.aborted) throw stoppingError()
      if (running.size + starting.size >= MAX_RUNNING_DEPLOYS)
        throw new ChimeraError(
          "RESOURCE_EXHAUSTED",
          `${MAX_RUNNING_DEPLOYS} deploys are running on this control plane, the most it runs at once; wait for one to end (GET /api/deployments)`,
        )
      // A slot is held from here: deploys started together cannot all pass the check above.
      const begun = begin()
      starting.add(begun)
      try {
        return await begun
      } finally {
        starting.delete(begun)
      }
    },

    /** Throws when a stop began meanwhile (a deploy's closure was building): nothing is set in motion. */
    refuseIfStopping() {
      if (stopping.signal.aborted) throw stoppingError()
    },

    /** Keeps `deploy` under `id` until its `done` settles. */
    track(id: string, deploy: RunningDeploy) {
      running.set(id, deploy)
      const forget = () => void running.delete(id)
      deploy.done.then(forget, forget)
    },

    get: (id: string) => running.get(id),

    /** Notes a target's progress, while its deploy runs. */
    progress(id: string, target: string, text: string) {
      const deploy = running.get(id)
      if (deploy) deploy.progress[target] = text
    },

    /**
     * For a graceful stop: deploys through agents stop waiting (`signal`) and are recorded as failed
     * (their nodes keep the desired closure, which their agents still realise); then every deploy is
     * waited for, up to `graceMs`. A deploy over SSH still running after that is left: without its
     * confirmation each target rolls itself back, and the deployment reads `interrupted`. True when
     * all had ended.
     */
    async settled(graceMs: number): Promise<boolean> {
      stopping.abort()
      let timer: ReturnType<typeof setTimeout> | undefined
      const ended = await Promise.race([
        // Those still starting first (each ends at once, refused), then every one they and others began.
        Promise.allSettled([...starting])
          .then(() => Promise.allSettled([...running.values()].map((r) => r.done)))
          .then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), graceMs)
        }),
      ])
      clearTimeout(timer)
      if (!ended) log.warn("stopping with deploys still running; they read interrupted", { ids: [...running.keys()] })
      return ended
    },
  }
}
