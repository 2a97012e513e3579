// What the fleet-scale benchmarks (heartbeats.ts, relay.ts, replicas.ts, side-by-side.ts) share:
// which core runs what, starting `chimera web` as a process of its own, the two heartbeat peers'
// command lines, stopping the processes they start, waiting for a server, and enrolling N nodes
// through the real API (a join token each, then POST /api/agent/enroll, `parallel` at a time).
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { freePort } from "../../tests/support/control-plane.ts"

/** Core 0 for the server under test, core 1 for the load process, when there are two to split. */
export const CORES = navigator.hardwareConcurrency >= 2 ? { server: "0", load: "1" } : { server: "0", load: "0" }
export const pinned = (core: string, argv: string[]) => (Bun.which("taskset") ? ["taskset", "-c", core, ...argv] : argv)
export const log = (s: string) => process.stderr.write(`${s}\n`)

/** The bare Bun.serve peer on `port`: it reads the body and answers 200 with no work, the HTTP floor. */
export const barePeerArgv = (port: number) => [
  process.execPath,
  "-e",
  `Bun.serve({ hostname: "127.0.0.1", port: ${port}, idleTimeout: 60, async fetch(req) { await req.arrayBuffer(); return Response.json({ desired: null }) } })`,
]

/** heartbeat-peer.ts on `port`, with `nodes` enrolled in its own database under `dir`. */
export async function heartbeatPeerArgv(port: number, dir: string, nodes: { id: string; credential: string | null }[]) {
  const nodesFile = join(dir, "heartbeat-peer-nodes.json")
  await writeFile(nodesFile, JSON.stringify(nodes))
  const script = join(import.meta.dir, "heartbeat-peer.ts")
  return [process.execPath, script, String(port), nodesFile, join(dir, "heartbeat-peer.db")]
}

/** The q-quantile of xs (nearest rank: the lower of the middle two for the median of an even count). */
export const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN
}
export const median = (xs: number[]) => quantile(xs, 0.5)
export const f1 = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1))

/** SIGTERM, then SIGKILL after 5 s. */
export async function stopProc(proc: Subprocess) {
  if (proc.exitCode !== null) return
  proc.kill("SIGTERM")
  let timer: ReturnType<typeof setTimeout> | undefined
  const exited = await Promise.race([
    proc.exited.then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), 5000)
    }),
  ])
  clearTimeout(timer)
  if (!exited) {
    proc.kill("SIGKILL")
    await proc.exited
  }
}

/** Resolves once `url` answers /api/health below 500; fails if `proc` exits or 10 s pass. */
export async function waitUp(url: string, proc: Subprocess, what: string) {
  for (let i = 0; ; i++) {
    if (
      await fetch(`${url}/api/health`).then(
        (r) => r.status < 500,
        () => false,
      )
    )
      return
    if (proc.exitCode !== null || i > 500) throw new Error(`${what} did not start on ${url}`)
    await Bun.sleep(20)
  }
}

export interface EnrolledNode {
  id: string
  credential: string
}

export async function enrol(
  url: string,
  adminToken: string,
  n: number,
  nodeId: (i: number) => string,
  parallel = 32,
): Promise<EnrolledNode[]> {
  const nodes: EnrolledNode[] = new Array(n)
  let next = 0
  const post = async (path: string, token: string, body: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    })
    if (res.status !== 201) throw new Error(`${path}: ${res.status} ${await res.text()}`)
    return (await res.json()) as Record<string, string>
  }
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const id = nodeId(i)
      const jt = await post("/api/nodes/join-tokens", adminToken, { nodeId: id })
      const res = await post("/api/agent/enroll", String(jt.token), { nodeId: id, hostname: id, agentVersion: "bench" })
      nodes[i] = { id, credential: String(res.credential) }
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  return nodes
}

export interface Web {
  url: string
  proc: Subprocess
  /** Its stdout and stderr together. */
  logFile: string
}

/**
 * `chimera web` of the checkout at `root`, pinned to `core`, on loopback and a free port, its data in
 * `dataDir`, logging warnings to `logFile`. Every node of a benchmark enrols from this one address and
 * all join tokens come from one admin token, so those two limits are lifted; the agents' own stay as
 * configured. `env` adds to (or overrides) that; `runtime` are flags for Bun itself.
 */
export async function startWeb(opts: {
  root: string
  core: string
  dataDir: string
  logFile: string
  name: string
  env?: Record<string, string>
  runtime?: string[]
  /** A port of its own choosing (a restart on the same address); a free one otherwise. */
  port?: number
}): Promise<Web> {
  const port = opts.port ?? freePort()
  const url = `http://127.0.0.1:${port}`
  const out = Bun.file(opts.logFile)
  const argv = [process.execPath, ...(opts.runtime ?? []), join(opts.root, "control/main.ts"), "web"]
  const proc = Bun.spawn(pinned(opts.core, argv).concat(["--host", "127.0.0.1", "--port", String(port)]), {
    env: {
      ...process.env,
      CHIMERA_DATA_DIR: opts.dataDir,
      CHIMERA_CONFIG_FILE: "",
      CHIMERA_TMUX_SOCKET: `chimera-bench-${opts.name}-${process.pid}`,
      CHIMERA_LOG_LEVEL: "warning",
      CHIMERA_RATE_LIMITS_API: "1000000000",
      CHIMERA_RATE_LIMITS_ENROLL: "1000000000",
      ...opts.env,
    },
    stdin: "ignore",
    stdout: out,
    stderr: out,
  })
  try {
    await waitUp(url, proc, opts.name)
  } catch (error) {
    proc.kill("SIGKILL")
    throw new Error(`${(error as Error).message}: ${(await out.text().catch(() => "")).slice(-2000)}`)
  }
  return { url, proc, logFile: opts.logFile }
}
