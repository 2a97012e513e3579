#!/usr/bin/env bun
// The heartbeat benchmark's load generator, a process of its own so that its CPU is counted apart
// from the control plane's (scripts/bench/heartbeats.ts pins each to its own core). It drives an
// open loop: heartbeat i is due at start + i/rate whatever happened to the earlier ones, so a slow
// server meets a growing queue instead of a politely slower client (no coordinated omission), and
// latency is measured from when a heartbeat was due, not from when the generator got round to it.
// Nodes take turns (i mod N), each with its own credential, over keep-alive connections (Bun's fetch
// pool). The first `warmup` seconds are driven but not counted. With several control-plane replicas
// (`urls`), node k always talks to replica k mod R, over that replica's share of the connections.
//
// usage: bun scripts/bench/heartbeat-load.ts CONFIG.json  (prints one JSON result line on stdout)
import { readdir, readFile } from "node:fs/promises"
import { cpuTicks } from "./proc-stat.ts"

export interface LoadConfig {
  /** One control plane, or several replicas of one (node k talks to urls[k mod R]). */
  urls: string[]
  /** id and credential of each simulated agent; null credential: the bare peer, which checks none. */
  nodes: { id: string; credential: string | null }[]
  rate: number
  seconds: number
  warmupSeconds: number
  /** The servers' pids, whose CPU time is read (summed) at the edges of the counted window. */
  serverPids: number[]
  /** Other pids whose CPU is reported apart (a PostgreSQL server's processes), read the same way. */
  databasePids?: number[]
  /** Keep-alive connections the heartbeats share; one request at a time on each. */
  connections: number
  /** How long after the last heartbeat is due the unanswered ones are given up (counted as errors). */
  timeoutMs: number
}

export interface LoadResult {
  offeredPerSecond: number
  counted: number
  ok: number
  errors: number
  statuses: Record<string, number>
  achievedPerSecond: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Latency from when the request was actually sent (generator lag left out), for comparison. */
  p99FromSendMs: number
  /** How late the generator sent heartbeats (its own lag), p99. */
  sendLagP99Ms: number
  serverCpuPercent: number
  /** The part of serverCpuPercent spent in the kernel (system time: sockets, file writes). */
  serverKernelPercent: number
  /** The database server's processes (PostgreSQL), when given; NaN otherwise. */
  databaseCpuPercent: number
  generatorCpuPercent: number
  maxInFlight: number
  /**
   * The first server's CPU over the window by thread, in % of a core: `main` (the event loop, where
   * the requests are answered) and the runtime's own threads by name (its garbage collector's helper,
   * the allocator's scavenger, the JIT compiler; the control plane's WAL checkpointer is a `Worker`).
   */
  serverThreadsPercent: Record<string, number>
}

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

/** The agent's heartbeat (protocol/agent.ts NodeHealth), built as text: the generator's CPU is scarce. */
function bodyParts(nodeId: string): [string, string] {
  const rest = {
    uptimeSeconds: 1234,
    load: [0.1, 0.05, 0],
    memory: { totalBytes: 8_000_000_000, availableBytes: 6_000_000_000 },
    disk: { path: "/", totalBytes: 100_000_000_000, freeBytes: 60_000_000_000 },
    system: { profile: GEN, current: GEN, booted: GEN },
    desired: GEN,
    phase: "congruent",
    heartbeatIntervalSeconds: 2,
  }
  const head = `{"nodeId":${JSON.stringify(nodeId)},"agentVersion":"bench","hostname":${JSON.stringify(nodeId)},"at":"`
  return [head, `",${JSON.stringify(rest).slice(1)}`]
}

/** CPU seconds so far of each thread of a process, by thread id, with its name (`main`: the first). */
const threadTicks = async (pid: number | undefined) => {
  const out = new Map<string, { name: string; seconds: number }>()
  if (pid === undefined) return out
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[])
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8").catch(() => null)
    if (stat === null) continue // a thread that ended
    const name = tid === String(pid) ? "main" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    out.set(tid, { name, seconds: (Number(f[11]) + Number(f[12])) / 100 })
  }
  return out
}
/** Each thread's CPU between two readings (threadTicks), summed by name, in % of a core over `wallS`. */
const threadsPercent = (start: Awaited<ReturnType<typeof threadTicks>>, end: typeof start, wallS: number) => {
  const out: Record<string, number> = {}
  // A thread that started within the window counts from zero; one that ended is left out.
  for (const [tid, { name, seconds }] of end)
    out[name] = (out[name] ?? 0) + ((seconds - (start.get(tid)?.seconds ?? 0)) / wallS) * 100
  return out
}
const cpuOf = async (pids: number[]) =>
  (await Promise.all(pids.map(cpuTicks))).reduce(
    (a, b) => ({ total: a.total + b.total, kernel: a.kernel + b.kernel }),
    {
      total: 0,
      kernel: 0,
    },
  )

const quantile = (sorted: Float64Array, q: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN)

/** One keep-alive HTTP/1.1 connection, one request at a time. Bun's fetch() is the heavier client:
 * on one core it could not offer 10,000/s to 20,000 distinct URLs even against the bare peer. */
interface Conn {
  write(data: string): void
  busy: boolean
  buf: string
  done: ((status: number) => void) | null
}

function connect(host: string, port: number, onIdle: (c: Conn) => void, onClose: (c: Conn, e: Error) => void) {
  return new Promise<Conn>((resolve, reject) => {
    let pending = ""
    const conn: Conn = { write: () => {}, busy: false, buf: "", done: null }
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open(socket) {
          conn.write = (data) => {
            if (pending) {
              pending += data
              return
            }
            const n = socket.write(data)
            if (n < data.length) pending = data.slice(n)
          }
          resolve(conn)
        },
        drain(socket) {
          if (!pending) return
          const n = socket.write(pending)
          pending = pending.slice(n)
        },
        data(_socket, chunk) {
          conn.buf += chunk.toString("latin1")
          for (;;) {
            const head = conn.buf.indexOf("\r\n\r\n")
            if (head < 0) return
            const headers = conn.buf.slice(0, head).toLowerCase()
            const length = Number(/\r\ncontent-length:\s*(\d+)/.exec(headers)?.[1] ?? 0)
            if (conn.buf.length < head + 4 + length) return
            const status = Number(conn.buf.slice(9, 12))
            conn.buf = conn.buf.slice(head + 4 + length)
            const done = conn.done
            conn.done = null
            conn.busy = false
            done?.(status)
            onIdle(conn)
          }
        },
        close() {
          onClose(conn, new Error("connection closed"))
        },
        error(_socket, error) {
          onClose(conn, error)
        },
        connectError(_socket, error) {
          reject(error)
        },
      },
    }).catch(reject)
  })
}

export async function drive(cfg: LoadConfig): Promise<LoadResult> {
  const total = Math.round(cfg.rate * (cfg.warmupSeconds + cfg.seconds))
  const firstCounted = Math.round(cfg.rate * cfg.warmupSeconds)
  const counted = total - firstCounted
  const latency = new Float64Array(counted).fill(Number.NaN)
  const fromSend = new Float64Array(counted).fill(Number.NaN)
  const lag = new Float64Array(counted)
  const statuses: Record<string, number> = {}
  const urls = cfg.urls.map((u) => new URL(u))
  const nodes = cfg.nodes.map((n, k) => {
    const [head, tail] = bodyParts(n.id)
    const auth = n.credential === null ? "" : `authorization: Bearer ${n.credential}\r\n`
    const target = k % urls.length
    return {
      target,
      start: `POST /api/agent/${encodeURIComponent(n.id)}/heartbeat HTTP/1.1\r\nhost: ${urls[target]?.host}\r\n${auth}content-type: application/json\r\ncontent-length: `,
      head,
      tail,
    }
  })
  let maxInFlight = 0
  let inFlight = 0
  let lastDone = 0
  let outstanding = total
  let finish!: () => void
  const finished = new Promise<void>((resolve) => {
    finish = resolve
  })
  const count = (key: string) => {
    statuses[key] = (statuses[key] ?? 0) + 1
  }

  const t0 = performance.now() + 50
  // Per replica: heartbeats waiting for a connection, and its idle connections in turn (FIFO), so
  // that all stay warm, as 20,000 agents' own connections would.
  const pools = urls.map(() => ({ queue: [] as number[], queueHead: 0, idle: [] as Conn[], idleHead: 0 }))
  type Pool = (typeof pools)[number]
  const poolOf = (i: number) => pools[nodes[i % nodes.length]?.target ?? 0] as Pool
  const send = (conn: Conn, i: number) => {
    const node = nodes[i % nodes.length]
    if (!node) return
    const due = t0 + (i * 1000) / cfg.rate
    const sent = performance.now()
    const k = i - firstCounted
    if (k >= 0) lag[k] = sent - due
    const body = `${node.head}${new Date().toISOString()}${node.tail}`
    conn.busy = true
    conn.done = (status) => {
      const end = performance.now()
      count(String(status))
      if (k >= 0 && status === 200) {
        latency[k] = end - due
        fromSend[k] = end - sent
        if (end > lastDone) lastDone = end
      }
      inFlight--
      if (--outstanding === 0) finish()
    }
    conn.write(`${node.start}${Buffer.byteLength(body)}\r\n\r\n${body}`)
  }
  const onIdleIn = (pool: Pool) => (conn: Conn) => {
    if (pool.queueHead < pool.queue.length) send(conn, pool.queue[pool.queueHead++] as number)
    else pool.idle.push(conn)
  }
  const onCloseIn = (pool: Pool) => (conn: Conn, error: Error) => {
    pool.idle = pool.idle.slice(pool.idleHead).filter((c) => c !== conn)
    pool.idleHead = 0
    if (conn.busy) {
      conn.busy = false
      const done = conn.done
      conn.done = null
      count(error.name)
      if (done) {
        inFlight--
        if (--outstanding === 0) finish()
      }
    }
  }
  await Promise.all(
    urls.map(async (url, r) => {
      const pool = pools[r] as Pool
      const share = Math.max(1, Math.round(cfg.connections / urls.length))
      const conns = await Promise.all(
        Array.from({ length: share }, () => connect(url.hostname, Number(url.port), onIdleIn(pool), onCloseIn(pool))),
      )
      pool.idle.push(...conns)
    }),
  )

  const databasePids = cfg.databasePids ?? []
  const sample = async () => ({
    server: await cpuOf(cfg.serverPids),
    database: await cpuOf(databasePids),
    threads: await threadTicks(cfg.serverPids[0]),
    self: process.cpuUsage(),
    at: performance.now(),
  })
  let windowCpu: Awaited<ReturnType<typeof sample>> | null = null
  const startWindow = async () => {
    windowCpu = await sample()
  }
  let issued = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * cfg.rate) / 1000) + 1)
      while (issued < due) {
        if (issued === firstCounted) void startWindow()
        inFlight++
        if (inFlight > maxInFlight) maxInFlight = inFlight
        const pool = poolOf(issued)
        const conn = pool.idleHead < pool.idle.length ? pool.idle[pool.idleHead++] : undefined
        if (pool.idleHead > 4096 && pool.idleHead * 2 > pool.idle.length) {
          pool.idle = pool.idle.slice(pool.idleHead)
          pool.idleHead = 0
        }
        if (conn) send(conn, issued)
        else pool.queue.push(issued)
        issued++
      }
      if (issued < total) setTimeout(tick, 1)
      else resolve()
    }
    setTimeout(tick, 0)
  })
  const timeout = setTimeout(() => finish(), cfg.timeoutMs)
  await finished
  clearTimeout(timeout)
  const end = await sample()
  const start = windowCpu ?? end
  const wallS = (end.at - start.at) / 1000
  const selfS = (end.self.user + end.self.system - start.self.user - start.self.system) / 1e6

  const okLatency = latency.filter((x) => !Number.isNaN(x)).sort()
  const okFromSend = fromSend.filter((x) => !Number.isNaN(x)).sort()
  const windowStart = t0 + (firstCounted * 1000) / cfg.rate
  return {
    offeredPerSecond: cfg.rate,
    counted,
    ok: okLatency.length,
    errors: counted - okLatency.length,
    statuses,
    // Counted heartbeats answered 200, over the time from the window's start to the last answer: a
    // server that falls behind stretches that time, so this drops below the offered rate.
    achievedPerSecond: okLatency.length / ((Math.max(lastDone, windowStart + cfg.seconds * 1000) - windowStart) / 1000),
    p50Ms: quantile(okLatency, 0.5),
    p99Ms: quantile(okLatency, 0.99),
    maxMs: okLatency[okLatency.length - 1] ?? Number.NaN,
    p99FromSendMs: quantile(okFromSend, 0.99),
    sendLagP99Ms: quantile(lag.sort(), 0.99),
    serverCpuPercent: ((end.server.total - start.server.total) / wallS) * 100,
    serverKernelPercent: ((end.server.kernel - start.server.kernel) / wallS) * 100,
    databaseCpuPercent:
      databasePids.length > 0 ? ((end.database.total - start.database.total) / wallS) * 100 : Number.NaN,
    generatorCpuPercent: (selfS / wallS) * 100,
    maxInFlight,
    serverThreadsPercent: threadsPercent(start.threads, end.threads, wallS),
  }
}

if (import.meta.main) {
  const path = process.argv[2]
  if (!path) throw new Error("usage: bun scripts/bench/heartbeat-load.ts CONFIG.json")
  const cfg = JSON.parse(await readFile(path, "utf8")) as LoadConfig
  process.stdout.write(`${JSON.stringify(await drive(cfg))}\n`)
  process.exit(0)
}
