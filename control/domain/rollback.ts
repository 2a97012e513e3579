// Rollback and generations over SSH, on many targets at once: the system profile goes back one
// generation (or to a named one) and what it then points at is activated; each target reports the
// generation it is on now, or why it could not move.
import type { StorePath } from "../../protocol/ids.ts"
import { generationsScript, rollbackScript } from "./activation.ts"
import { mapLimit } from "./map-limit.ts"
import type { Generation, RemoteExecutorPort, Target } from "./operation-ports.ts"

export interface RollbackResult {
  target: string
  ok: boolean
  generation: number | null
  path: StorePath | null
  error: string | null
  ms: number
}

export async function rollback(
  exec: RemoteExecutorPort,
  targets: Target[],
  generation: number | null,
  parallel: number,
): Promise<RollbackResult[]> {
  return mapLimit(targets, parallel, async (target) => {
    const r = await exec.exec(target, rollbackScript(generation), { timeoutMs: 300_000 })
    const m = /^generation (\d+) (\S+)$/m.exec(r.stdout)
    if (r.ok && m)
      return { target: target.name, ok: true, generation: Number(m[1]), path: m[2] as StorePath, error: null, ms: r.ms }
    const why = r.failure?.message ?? (r.stderr.trim().split("\n").at(-1) || `exited ${r.exitCode}`)
    return { target: target.name, ok: false, generation: null, path: null, error: why, ms: r.ms }
  })
}

/** Parses `<n> <date> <time> <path> [(current)]` lines of generationsScript. */
export function parseGenerations(stdout: string): Generation[] {
  const out: Generation[] = []
  for (const line of stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\/nix\/store\/\S+)\s*(\(current\))?\s*$/.exec(line)
    if (m)
      out.push({ number: Number(m[1]), date: `${m[2]}T${m[3]}`, path: m[4] as StorePath, current: m[5] !== undefined })
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
