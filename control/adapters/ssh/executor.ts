// RemoteExecutorPort over SSH (ssh2 for commands, the ssh client through nix-copy-closure for closures).
// Every call returns a value per target, failures included: one unreachable node, changed host key or
// hung command fails that target alone, while the others carry on. Each target gets one budget
// (`timeoutMs`) for connecting and running the command together; execMany keeps at most `parallel`
// targets in flight and returns results in the order the targets were given.
import { createLogger } from "../../../protocol/log.ts"
import { mapLimit } from "../../domain/map-limit.ts"
import {
  type ExecOptions,
  type ExecResult,
  RemoteError,
  type RemoteExecutorPort,
  type SystemState,
  type Target,
} from "../../domain/operation-ports.ts"
import { copyClosure } from "./closure-copy.ts"
import { runCommand, stoppedOnNode } from "./command.ts"
import { SshFailure } from "./failure.ts"
import { type KnownHosts, openKnownHosts } from "./known-hosts.ts"
import {
  type Credentials,
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_PARALLEL,
  DEFAULT_TIMEOUT_MS,
  knownHostsPath,
  loadCredentials,
  type SshExecutorOptions,
} from "./options.ts"
import { createPool } from "./pool.ts"
import { resolveRoute } from "./ssh-config.ts"
import { parseSystemState, SYSTEM_STATE_COMMAND } from "./system-state.ts"
import { targetKey } from "./target.ts"

const log = createLogger("ssh")

export interface SshExecutor extends RemoteExecutorPort {
  /** SSH handshakes so far (pooled connections are reused, so this grows by one per target). */
  handshakes(): number
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the items' order. */

export function createSshExecutor(options: SshExecutorOptions = {}): SshExecutor {
  const env = options.env ?? process.env
  const credentials = new Map<string, Promise<Credentials>>()
  const knownHosts = new Map<string, KnownHosts>()
  const pool = createPool({
    route: (req) => resolveRoute(req, env),
    credentials: (route) => {
      const key = JSON.stringify([route.fromConfig, route.identitiesOnly, route.identityFiles])
      const made = credentials.get(key) ?? loadCredentials(options, route)
      credentials.set(key, made)
      return made
    },
    knownHosts: (route) => {
      const path = knownHostsPath(options, route)
      const made = knownHosts.get(path) ?? openKnownHosts(path)
      knownHosts.set(path, made)
      return made
    },
    trustNewHosts: options.trustNewHosts ?? false,
    keepaliveMs: options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
  })
  const parallel = options.parallel ?? DEFAULT_PARALLEL

  const exec = async (target: Target, command: string, opts: ExecOptions = {}): Promise<ExecResult> => {
    const t0 = performance.now()
    const budget = opts.timeoutMs ?? options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const done = (r: Omit<ExecResult, "target" | "ms" | "ok">): ExecResult => {
      const result = { target, ok: r.exitCode === 0 && !r.failure, ...r, ms: Math.round(performance.now() - t0) }
      if (r.failure) log.info("target failed", { target: targetKey(target), kind: r.failure.kind, ms: result.ms })
      return result
    }
    try {
      for (let attempt = 0; ; attempt++) {
        const lease = await pool.acquire(target, budget, opts.fresh)
        const left = budget - (performance.now() - t0)
        const sent = opts.stopOnNode ? stoppedOnNode(command, left) : command
        const cap = opts.maxOutputBytes ?? options.maxOutputBytes
        const outcome = await runCommand(lease.client, target, sent, left, opts.stdin, cap, budget)
        lease.release()
        // A pooled connection the server dropped (sshd restarted, idle cut) fails at channel open; retry
        // once on a new one. Anything else, the command has run or may have, so it is never repeated.
        if (outcome.channelFailed && lease.reused && attempt === 0) {
          lease.discard()
          continue
        }
        if (outcome.failure?.kind === "timeout") lease.discard()
        const { channelFailed: _, ...rest } = outcome
        return done(rest)
      }
    } catch (error) {
      if (error instanceof SshFailure) return done({ exitCode: null, stdout: "", stderr: "", failure: error.failure })
      const message = `${target.name}: ${error instanceof Error ? error.message : String(error)}`
      return done({ exitCode: null, stdout: "", stderr: "", failure: { kind: "error", message } })
    }
  }

  return {
    exec,
    execMany: (targets, command, opts) => mapLimit(targets, parallel, (t) => exec(t, command, opts)),
    syncClosure: (target, path, opts = {}) =>
      copyClosure(options, target, path, {
        ...opts,
        connectTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      }),
    async systemState(target): Promise<SystemState> {
      const result = await exec(target, SYSTEM_STATE_COMMAND)
      if (!result.ok) throw new RemoteError(result)
      return parseSystemState(result.stdout)
    },
    handshakes: () => pool.handshakes(),
    close: () => pool.close(),
  }
}
