// SSH connections on ssh2, one per target, kept open (with SSH keep-alives) and reused by every command
// that follows: a deploy runs a dozen commands per node, and a handshake costs more than most of them.
// `fresh` leases a connection of their own that is closed after use (magic rollback confirms over a
// new connection, to prove the node is still reachable after activation). Connecting is also where a
// host is judged: its known_hosts entries pick the host key algorithms we accept, and the key it
// presents is verified before authentication, so no credential is ever offered to an unverified host.
// Each target is dialled where ~/.ssh/config sends it (HostName, User, Port, keys), through its
// ProxyJump hosts if it has any (hops.ts), each of them verified the same way.
import type { Duplex } from "node:stream"
import { type AgentAuthMethod, type AuthMethod, Client, type ConnectConfig, type PublicKeyAuthMethod } from "ssh2"
import { createLogger } from "../../../protocol/log.ts"
import type { Target } from "../../domain/operation-ports.ts"
import { classify, type Failure, hostKeyFailure, SshFailure, timeoutFailure } from "./failure.ts"
import { type Hop, planHops } from "./hops.ts"
import { algorithmsFor, type HostKeyVerdict, type KnownHosts } from "./known-hosts.ts"
import { type Credentials, describeCredentials } from "./options.ts"
import type { RouteRequest, SshRoute } from "./ssh-config.ts"
import { targetKey } from "./target.ts"

const log = createLogger("ssh-pool")

export interface PoolContext {
  /** The route OpenSSH would take to a host (ssh-config.ts). */
  route: (req: RouteRequest) => Promise<SshRoute>
  credentials: (route: SshRoute) => Promise<Credentials>
  knownHosts: (route: SshRoute) => KnownHosts
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

  // One SSH connection to `hop`, over `sock` when it is reached through a jump host.
  const handshake = async (hop: Hop, timeoutMs: number, sock: Duplex | undefined, onClose: () => void) => {
    const t = hop.shown
    const knownHosts = ctx.knownHosts(hop.route)
    // HostKeyAlias replaces the host name and port in known_hosts, as in ssh.
    const [kh, kp] = hop.route.hostKeyAlias ? [hop.route.hostKeyAlias, 22] : [t.host, t.port]
    const [recorded, creds] = await Promise.all([knownHosts.lookup(kh, kp), ctx.credentials(hop.route)])
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
      const judged = () => (verdict ? hostKeyFailure(t, verdict, knownHosts.path) : null)
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
        knownHosts
          .verify(kh, kp, key)
          .then(async (v) => {
            if (v.kind === "unknown" && ctx.trustNewHosts) {
              await knownHosts.add(kh, kp, key)
              v = { kind: "known" }
            }
            verdict = v
            verify(v.kind === "known")
          })
          .catch((error) => {
            verdict = null
            fail({ kind: "error", message: `${t.name}: cannot read ${knownHosts.path}: ${String(error)}` })
          })
      }
      const username = t.user
      // The agent's keys first, then the key files, as ssh offers them.
      const auth: (AgentAuthMethod | PublicKeyAuthMethod)[] = [
        ...(creds.agent ? [{ type: "agent", username, agent: creds.agent } satisfies AgentAuthMethod] : []),
        ...creds.keys.map((k) => ({ type: "publickey", username, key: k.privateKey }) satisfies PublicKeyAuthMethod),
      ]
      const config: ConnectConfig = {
        host: t.host,
        port: t.port,
        username,
        ...(sock ? { sock } : {}),
        hostVerifier,
        keepaliveInterval: ctx.keepaliveMs,
        keepaliveCountMax: 3,
        readyTimeout: timeoutMs + 1000,
        authHandler: auth as AuthMethod[],
        ...(algorithms.length ? { algorithms: { serverHostKey: algorithms as never } } : {}),
      }
      client.connect(config)
    })
  }

  // A channel from a jump host to the next hop, which then runs its own SSH session over it. The jump
  // host answers only once its own TCP connect to the hop has ended, which for an address that drops
  // packets is the kernel's two minutes: the connect budget bounds the wait, as it bounds a handshake.
  const forward = (client: Client, from: Hop, to: Hop, leftMs: number, budgetMs: number) =>
    new Promise<Duplex>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SshFailure(timeoutFailure(to.shown, "connect", budgetMs))), leftMs)
      client.forwardOut("127.0.0.1", 0, to.shown.host, to.shown.port, (error, stream) => {
        clearTimeout(timer)
        if (!error) return resolve(stream)
        reject(
          new SshFailure({
            kind: "unreachable",
            message: `${from.shown.name}: ${targetKey(from.shown)} could not open a connection to ${to.shown.host} port ${to.shown.port}: ${error.message}`,
          }),
        )
      })
    })

  const connect = async (t: Target, timeoutMs: number, onClose: () => void): Promise<Client> => {
    const deadline = performance.now() + timeoutMs
    const hops = await planHops(t, ctx.route)
    const opened: Client[] = []
    let sock: Duplex | undefined
    try {
      for (const [i, hop] of hops.entries()) {
        const left = Math.max(1, deadline - performance.now())
        const last = i === hops.length - 1
        const client = await handshake(hop, left, sock, last ? onClose : () => {})
        opened.push(client)
        if (!last)
          sock = await forward(client, hop, hops[i + 1] as Hop, Math.max(1, deadline - performance.now()), timeoutMs)
      }
    } catch (error) {
      for (const c of opened) c.end()
      throw error
    }
    const client = opened.at(-1) as Client
    // Jump connections serve this one connection and close with it.
    if (opened.length > 1)
      client.once("close", () => {
        for (const c of opened.slice(0, -1)) c.end()
      })
    return client
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
