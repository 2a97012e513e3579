// A real control plane for tests: its own temp data dir and SQLite database, on 127.0.0.1 and a free
// port, in this process (`startInProcess`) or as a child process that can be SIGKILLed and restarted
// on the same data (`spawnControlPlane`).
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import type { Refusals } from "../../control/api/refusals.ts"
import { LIMIT_NAMES, type RateLimits } from "../../control/domain/auth/rate-limiter.ts"
import type { CommandTargets } from "../../control/domain/command-service.ts"
import type { Clock } from "../../control/domain/ports.ts"
import { type ControlPlane, type ServerOptions, startControlPlane } from "../../control/server.ts"
import type { TrustSettings } from "../../control/trust.ts"
import { killTmuxServer, tmuxSocketPath } from "./tmux.ts"

export interface TestControlPlane extends AsyncDisposable {
  url: string
  dataDir: string
  adminToken: string
  /** Every route the API serves (in-process control planes only). */
  routes: { method: string; path: string }[]
  /** Refused requests as counted (in-process control planes only). */
  refusals?: Refusals
  /** The private tmux server (`tmux -L`) of its CLI sessions. */
  tmuxSocket: string
  /** fetch against the control plane with the admin token. */
  api(path: string, init?: RequestInit): Promise<Response>
  stop(): Promise<void>
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "chimera-cp-"))
}

function withApi(url: string, adminToken: string) {
  return (path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${adminToken}`,
        "content-type": "application/json",
        ...(init.headers as Record<string, string>),
      },
    })
}

/**
 * Tests poll the API far faster than a person (every 25 ms), so rate limits are lifted unless a test
 * asks for its own (`trust.rateLimits`); the rate-limit suites pass the configured defaults explicitly.
 */
export const LIFTED_LIMITS: RateLimits = Object.fromEntries(
  LIMIT_NAMES.map((n) => [n, { limit: 1e9, windowMs: 60_000 }]),
) as RateLimits

export interface InProcessOptions {
  dataDir?: string
  /** Default: SQLite in the data dir. */
  databaseUrl?: string
  clock?: Clock
  trust?: Partial<TrustSettings>
  /** CLI sessions' PATH for provider binaries (default: this process's). */
  providerPath?: string
  /** `[retention]` (default: commands 30 days, events 90, pruned hourly). */
  retention?: ServerOptions["retention"]
  /** `[limits]`: event streams and node report quotas (default: the configured defaults). */
  limits?: ServerOptions["limits"]
  /** The nodes the command API reaches (a testbed's, via commandTargets()). */
  commandTargets?: CommandTargets | null
  /** `[telemetry]`: an OTLP/HTTP collector to send spans and metrics to. */
  telemetry?: { endpoint: string; insecure: boolean }
  /** The admin token, for a replica whose data dir has none (another replica on its database made it). */
  adminToken?: string
  /** `[incidents]`, the channels incidents are told through, and the outbox worker's retries. */
  incidents?: ServerOptions["incidents"]
  notify?: ServerOptions["notify"]
  delivery?: ServerOptions["delivery"]
  /** `[ai]`: the chat's model provider (a scripted one from llm-server.ts). */
  ai?: ServerOptions["ai"]
}

/** The admin token in a control plane's data dir, else the one the test passed (another replica's). */
async function _adminToken(path: string | null, given: string | undefined): Promise<string> {
  if (path !== null) return (await readFile(path, "utf8")).trim()
  if (given === undefined) throw new Error("this replica's data dir has no admin token: pass the first replica's")
  return given
}

let tmuxServers = 0
/** A private tmux server per control plane, so CLI sessions never land on the user's own. */
const privateTmux = () => `chimera-cp-${process.pid}-${++tmuxServers}`
/** Stops it if a CLI session ever started it (most control planes never run tmux at all). */
const stopTmux = async (name: string) => {
  if (existsSync(tmuxSocketPath(name))) await killTmuxServer(name)
}

export async function startInProcess(opts: InProcessOptions = {}): Promise<TestControlPlane> {
  const dataDir = opts.dataDir ?? (await tempDir())
  const tmuxSocket = privateTmux()
  const cp: ControlPlane = await startControlPlane({
    host: "127.0.0.1",
    port: 0,
    dataDir,
    databaseUrl: opts.databaseUrl ?? `sqlite://${join(dataDir, "chimera.db")}`,
    sweepIntervalMs: 200,
    clock: opts.clock,
    trust: { ...opts.trust, rateLimits: { ...LIFTED_LIMITS, ...opts.trust?.rateLimits } },
    cli: { tmuxSocket, providerPath: opts.providerPath },
    commandTargets: opts.commandTargets,
    retention: opts.retention,
    telemetry: opts.telemetry,
    limits: opts.limits,
    incidents: opts.incidents,
    notify: opts.notify,
    delivery: opts.delivery,
    ai: opts.ai,
  })
  const adminToken = await _adminToken(cp.adminTokenPath, opts.adminToken)
  const stop = async () => {
    await cp.stop()
    await stopTmux(tmuxSocket)
    if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true })
  }
  return {
    url: cp.url,
    tmuxSocket,
    dataDir,
    adminToken,
    routes: cp.routes,
    refusals: cp.refusals,
    api: withApi(cp.url, adminToken),
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

export interface SpawnedControlPlane extends TestControlPlane {
  proc: Subprocess
  /** SIGKILL the process (nothing flushed, nothing closed). */
  kill(): Promise<void>
  /** Start it again on the same data dir and port. */
  restart(): Promise<void>
}

const MAIN = join(import.meta.dir, "../../control/main.ts")
/** How long a spawned control plane may take to answer its health check. */
const START_TIMEOUT_MS = 60_000

export interface SpawnOptions {
  dataDir?: string
  /** CHIMERA_DB (default: SQLite in the data dir). */
  databaseUrl?: string
  /**
   * The admin token, for a replica whose data dir has none (another replica on its database made it);
   * without one such a replica's `adminToken` is "" (replicas started at once: the test finds the token).
   */
  adminToken?: string
  /** More environment for the process (its settings: CHIMERA_<SECTION>_<FIELD>). */
  env?: Record<string, string>
}

/** `chimera web` as a child process on 127.0.0.1:`port`, with its own data dir. */
export async function spawnControlPlane(port: number, opts: SpawnOptions = {}): Promise<SpawnedControlPlane> {
  const dataDir = opts.dataDir ?? (await tempDir())
  const url = `http://127.0.0.1:${port}`
  const tmuxSocket = privateTmux()
  const start = async () => {
    const proc = Bun.spawn([process.execPath, MAIN, "web", "--host", "127.0.0.1", "--port", String(port)], {
      env: {
        ...process.env,
        CHIMERA_DATA_DIR: dataDir,
        ...(opts.databaseUrl ? { CHIMERA_DB: opts.databaseUrl } : {}),
        CHIMERA_CONFIG_FILE: "",
        CHIMERA_TMUX_SOCKET: tmuxSocket,
        CHIMERA_RATE_LIMITS_API: "1000000000",
        CHIMERA_RATE_LIMITS_AGENT: "1000000000",
        CHIMERA_RATE_LIMITS_ENROLL: "1000000000",
        ...opts.env,
      },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    })
    // Generous: on a loaded machine several replicas starting at once take turns through migrations.
    const deadline = performance.now() + START_TIMEOUT_MS
    for (;;) {
      const up = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(5000) }).then(
        (r) => r.ok,
        () => false,
      )
      if (up) return proc
      if (proc.exitCode !== null || performance.now() > deadline) {
        // Its stderr ends only when it does: a process still starting is stopped before it is read.
        if (proc.exitCode === null) proc.kill("SIGKILL")
        const err = await new Response(proc.stderr).text()
        throw new Error(`chimera web did not start on ${url} within ${START_TIMEOUT_MS / 1000} s: ${err}`)
      }
      await Bun.sleep(20)
    }
  }
  let proc = await start()
  const tokenFile = join(dataDir, "admin.token")
  const adminToken = existsSync(tokenFile) ? await _adminToken(tokenFile, undefined) : (opts.adminToken ?? "")
  const stop = async () => {
    proc.kill("SIGTERM")
    await proc.exited
    await stopTmux(tmuxSocket)
    if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true })
  }
  const cp: SpawnedControlPlane = {
    url,
    dataDir,
    adminToken,
    tmuxSocket,
    routes: [],
    get proc() {
      return proc
    },
    api: withApi(url, adminToken),
    async kill() {
      proc.kill("SIGKILL")
      await proc.exited
    },
    async restart() {
      proc = await start()
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
  return cp
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() })
  const port = s.port ?? 0
  s.stop(true)
  return port
}

/**
 * `chimera deploy --via-control-plane --targets NODE --config CONFIG` against `cp`, as an operator
 * runs it from a script: no terminal, no colour, no configuration file, the admin token.
 */
export function spawnRemoteDeploy(cp: { url: string; adminToken: string }, node: string, config: string) {
  return Bun.spawn([process.execPath, MAIN, "deploy", "--via-control-plane", "--targets", node, "--config", config], {
    env: { ...process.env, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, CHIMERA_CONFIG_FILE: "", NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  })
}
