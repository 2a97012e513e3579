// Rollback and generations over SSH, on many targets at once: the system profile goes back one
// generation (or to a named one) and what it then points at is activated; each target reports the
// generation it is on now, or why it could not move. A target's rollback is handed to `onRolledBack`
// the moment it is done, while the node's hold on its agent still stands (activation.ts), so the
// caller can make the rolled-back closure the node's desired one before the agent may heal again.
// Once `signal` is aborted (Ctrl-C) no further target starts; those already started go on to their end.
// The switch has the activation's bound (bounded-switch.ts), and a target whose switch was stopped at
// it says so.
import type { StorePath } from "../../protocol/ids.ts"
import { generationsScript, rollbackScript, switchBackSeconds } from "./activation.ts"
import { DEFAULT_ACTIVATION_TIMEOUT_SECONDS, SWITCH_SLACK_SECONDS, switchTimedOut } from "./bounded-switch.ts"
import { mapLimit } from "./map-limit.ts"
import { refusedBusy } from "./node-claim.ts"
import type { Generation, RemoteExecutorPort, Target } from "./operation-ports.ts"

export interface RollbackResult {
  target: string
  ok: boolean
  generation: number | null
  path: StorePath | null
  error: string | null
  ms: number
}

export interface RollbackHooks {
  /** The target's rollback is sent: from here it may switch the node, with or without an answer. */
  onStarted?: (target: string) => void
  onRolledBack?: (target: string, closure: StorePath, generation: number) => Promise<void>
  onFailed?: (target: string, error: string) => void
  signal?: AbortSignal
}

export interface RollbackOptions {
  /** Back to this generation; null: back one. */
  generation: number | null
  parallel: number
  /** How long the switch may run before it is stopped (DEFAULT_ACTIVATION_TIMEOUT_SECONDS). */
  activationTimeoutSeconds?: number
}

export async function rollback(
  exec: RemoteExecutorPort,
  targets: Target[],
  o: RollbackOptions,
  hooks: RollbackHooks = {},
): Promise<RollbackResult[]> {
  const { generation } = o
  const activation = o.activationTimeoutSeconds ?? DEFAULT_ACTIVATION_TIMEOUT_SECONDS
  return mapLimit(targets, o.parallel, async (target) => {
    if (hooks.signal?.aborted)
      return { target: target.name, ok: false, generation: null, path: null, error: "not started", ms: 0 }
    hooks.onStarted?.(target.name)
    const r = await exec.exec(target, rollbackScript(generation, undefined, activation), {
      timeoutMs: (switchBackSeconds(activation) + SWITCH_SLACK_SECONDS) * 1000,
    })
    const m = /^generation (\d+) (\S+)$/m.exec(r.stdout)
    if (r.ok && m) {
      const path = m[2] as StorePath
      await hooks.onRolledBack?.(target.name, path, Number(m[1]))
      return { target: target.name, ok: true, generation: Number(m[1]), path, error: null, ms: r.ms }
    }
    const absent = generation !== null && /profile version \d+ does not exist/.test(r.stderr)
    const said = r.stderr.trim().split("\n").at(-1)
    const why = absent
      ? `${target.name} has no generation ${generation}: \`chimera generations --targets ${target.name}\` lists the ones it has`
      : refusedBusy(r)
        ? `${said}; nothing was changed: roll back once it is confirmed or rolled back`
        : switchTimedOut(r)
          ? `${said} on the node: its profile went back, but what runs may be part way between the two; see where it is: chimera generations --targets ${target.name}`
          : (r.failure?.message ?? (said || `exited ${r.exitCode}`))
    hooks.onFailed?.(target.name, why)
    return { target: target.name, ok: false, generation: null, path: null, error: why, ms: r.ms }
  })
}

/** Parses `<n> <epoch> <path> [(current)]` lines of generationsScript; the date is ISO 8601 UTC. */
export function parseGenerations(stdout: string): Generation[] {
  const out: Generation[] = []
  for (const line of stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\/nix\/store\/\S+)\s*(\(current\))?\s*$/.exec(line)
    if (m)
      out.push({
        number: Number(m[1]),
        date: new Date(Number(m[2]) * 1000).toISOString(),
        path: m[3] as StorePath,
        current: m[4] !== undefined,
      })
  }
  return out
}

export interface GenerationsResult {
  target: string
  ok: boolean
  generations: Generation[]
  error: string | null
}

export async function listGenerations(
  exec: RemoteExecutorPort,
  targets: Target[],
  parallel: number,
): Promise<GenerationsResult[]> {
  return mapLimit(targets, parallel, async (target) => {
    const r = await exec.exec(target, generationsScript())
    if (r.ok) return { target: target.name, ok: true, generations: parseGenerations(r.stdout), error: null }
    return {
      target: target.name,
      ok: false,
      generations: [],
      error: r.failure?.message ?? (r.stderr.trim() || `exited ${r.exitCode}`),
    }
  })
}
