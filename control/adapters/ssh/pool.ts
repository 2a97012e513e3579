// SSH connections on ssh2, one per target, kept open (with SSH keep-alives) and reused by every command
// that follows: a deploy runs a dozen commands per node, and a handshake costs more than most of them.
// `fresh` leases a connection of their own that is closed after use (magic rollback confirms over a
// new connection, to prove the node is still reachable after activation). Connecting is also where a
// host is judged: its known_hosts entries pick the host key algorithms we accept, and the key it
// presents is verified before authentication, so no credential is ever offered to an unverified host.
import { Client, type ConnectConfig } from "ssh2"
import { createLogger } from "../../../protocol/log.ts"
import type { Target } from "../../domain/operation-ports.ts"
import { classify, type Failure, hostKeyFailure, SshFailure, timeoutFailure } from "./failure.ts"
import { algorithmsFor, type HostKeyVerdict, type KnownHosts } from "./known-hosts.ts"
import { type Credentials, describeCredentials } from "./options.ts"
import { targetKey } from "./target.ts"

const log = createLogger("ssh-pool")

export interface PoolContext {
  credentials: () => Promise<Credentials>
  knownHosts: KnownHosts
  trustNewHosts: boolean
  keepaliveMs: number
}

export interface Lease {
  client: Client
  /** True when the connection was already open (a dead one can then be retried once). */
  reused: boolean
  release(): void
  /** Drops the connection from the pool and closes it (it failed under us). */
  discard(): void
}

interface Live {
  ready: Promise<Client>
  closed: boolean
}

export interface ConnectionPool {
  acquire(t: Target, timeoutMs: number, fresh?: boolean): Promise<Lease>
  /** SSH handshakes completed since the pool was made (tests prove reuse with it). */
  handshakes(): number
  close(): Promise<void>
}

export function createPool(ctx: PoolContext): ConnectionPool {
  const live = new Map<string, Live>()
  const all = new Set<Client>()
  let handshakes = 0

  const connect = async (t: Target, timeoutMs: number, onClose: () => void): Promise<Client> => {
    const [recorded, creds] = await Promise.all([ctx.knownHosts.lookup(t.host, t.port), ctx.credentials()])
    if (creds.kind === "none") throw new SshFailure({ kind: "auth-failed", message: `${t.name}: ${creds.reason}` })
    const algorithms = algorithmsFor(recorded)
    const t0 = performance.now()
    return new Promise<Client>((resolve, reject) => {
      const client = new Client()
      let verdict: HostKeyVerdict | null = null
      let settled = false
      const fail = (f: Failure) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        client.destroy()
        reject(new SshFailure(f))
      }
      // ssh2's readyTimeout does not cover a TCP connect that hangs; this covers everything.
      const timer = setTimeout(() => fail(timeoutFailure(t, "connect", timeoutMs)), timeoutMs)
      const judged = () => (verdict ? hostKeyFailure(t, verdict, ctx.knownHosts.path) : null)
      client.on("ready", () => {
        if (settled) return void client.end()
        settled = true
        clearTimeout(timer)
        handshakes++
        all.add(client)
        log.debug("connected", { target: targetKey(t), ms: Math.round(performance.now() - t0) })
        resolve(client)
      })
      client.on("error", (error) => fail(judged() ?? classify(t, error, describeCredentials(creds), timeoutMs)))
      client.on("close", () => {
        all.delete(client)
        onClose()
        fail(judged() ?? { kind: "unreachable", message: `${t.name}: ${targetKey(t)} closed the connection` })
      })
      const hostVerifier = (key: Buffer, verify: (ok: boolean) => void) => {
        ctx.knownHosts
          .verify(t.host, t.port, key)
          .then(async (v) => {
            if (v.kind === "unknown" && ctx.trustNewHosts) {
              await ctx.knownHosts.add(t.host, t.port, key)
              v = { kind: "known" }
            }
            verdict = v
            verify(v.kind === "known")
          })
          .catch((error) => {
            verdict = null
            fail({ kind: "error", message: `${t.name}: cannot read ${ctx.knownHosts.path}: ${String(error)}` })
          })
      }
      const config: ConnectConfig = {
        host: t.host,
        port: t.port,
        username: t.user,
        hostVerifier,
        keepaliveInterval: ctx.keepaliveMs,
        keepaliveCountMax: 3,
        readyTimeout: timeoutMs + 1000,
        ...(creds.kind === "key" ? { privateKey: creds.privateKey } : { agent: creds.socket }),
        ...(algorithms.length ? { algorithms: { serverHostKey: algorithms as never } } : {}),
      }
      client.connect(config)
    })
  }

  return {
    async acquire(t, timeoutMs, fresh = false) {
      if (fresh) {
        const client = await connect(t, timeoutMs, () => {})
        const close = () => client.end()
        return { client, reused: false, release: close, discard: close }
      }
      const key = targetKey(t)
      let entry = live.get(key)
      const reused = entry !== undefined && !entry.closed
      if (!entry || entry.closed) {
        let made: Live | undefined
        const ready = connect(t, timeoutMs, () => {
          if (made) made.closed = true
          if (live.get(key) === made) live.delete(key)
        })
        made = { ready, closed: false }
        const self = made
        // A failed connect is not pooled: the next command tries again.
        ready.catch(() => live.get(key) === self && live.delete(key))
        live.set(key, made)
        entry = made
      }
      const client = await entry.ready
      const held = entry
      return {
        client,
        reused,
        release: () => {},
        discard: () => {
          held.closed = true
          if (live.get(key) === held) live.delete(key)
          client.end()
        },
      }
    },
    handshakes: () => handshakes,
    async close() {
      const clients = [...all]
      live.clear()
      await Promise.all(
        clients.map(
          (c) =>
            new Promise<void>((resolve) => {
              c.once("close", () => resolve())
              c.end()
              setTimeout(resolve, 1000).unref()
            }),
        ),
      )
    },
  }
}
