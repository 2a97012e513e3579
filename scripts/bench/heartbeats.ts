// Heartbeat ingest (target: 10,000 heartbeats/s sustained from 20,000 simulated agents, p99 under
// 50 ms, on this 2-core machine). A real control plane (`chimera web`, its own data dir, SQLite by
// default or PostgreSQL) runs as a child process pinned to core 0; N agents are enrolled through the
// real API (a join token each, then POST /api/agent/enroll); then a load generator pinned to core 1
// (scripts/bench/heartbeat-load.ts) drives heartbeats open-loop at a fixed rate, every node with its
// own credential. The peer, in the same run and on the same cores, is a bare Bun.serve that reads the
// body and answers 200 with no work at all: the ratio between the two is what Chimera's auth,
// validation and store cost. On SQLite a second peer, heartbeat-peer.ts, does a heartbeat's work in one
// small file written for that alone: the ratio to it is what Chimera costs beyond the work itself. On PostgreSQL, `replicas: 2` starts a second `chimera web` on the same
// database, pinned to the other core (beside the load generator), node k heartbeating to replica
// k mod 2; server CPU is then both replicas' together, and PostgreSQL's own processes are counted
// apart. Every process started here is stopped here, whatever fails.
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { freePort } from "../../tests/support/control-plane.ts"
import {
  barePeerArgv,
  CORES,
  enrol,
  f1,
  heartbeatPeerArgv,
  log,
  median,
  pinned,
  startWeb,
  stopProc,
  waitUp,
} from "./common.ts"
import type { LoadConfig, LoadResult } from "./heartbeat-load.ts"

const ROOT = join(import.meta.dir, "../..")
const LOAD = join(import.meta.dir, "heartbeat-load.ts")

export interface HeartbeatOptions {
  nodes: number
  rate: number
  seconds: number
  rounds: number
  /** Keep-alive connections the load generator spreads the heartbeats over. */
  connections: number
  /** Default: SQLite in the control plane's data dir. */
  databaseUrl?: string
  /** Control-plane replicas on `databaseUrl` (PostgreSQL only); default 1. */
  replicas?: number
  label?: string
  /** Added to the environment of the control plane and of the peer alike (both are Bun). */
  env?: Record<string, string>
}

export interface HeartbeatResults {
  opts: HeartbeatOptions
  enrolSeconds: number
  chimera: LoadResult[]
  peer: LoadResult[]
  /** The peer that does a heartbeat's work (heartbeat-peer.ts); run beside SQLite only, else empty. */
  workedPeer: LoadResult[]
  /** The machine's 1-minute load average before and after the section. */
  loadAverage: [number, number]
  rssMb: number
  peakRssMb: number
  cores: { server: string; load: string }
}

async function memory(pid: number) {
  const status = await readFile(`/proc/${pid}/status`, "utf8")
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN)
  return { rssMb: kb("VmRSS") / 1024, peakRssMb: kb("VmHWM") / 1024 }
}

/**
 * Runs the load generator (heartbeat-load.ts) pinned to the load core with `cfg` (written to
 * DIR/NAME.json) and returns what it measured; it is killed whatever happens.
 */
export async function runLoad(dir: string, name: string, cfg: LoadConfig): Promise<LoadResult> {
  const path = join(dir, `${name}.json`)
  await writeFile(path, JSON.stringify(cfg))
  const proc = Bun.spawn(pinned(CORES.load, [process.execPath, LOAD, path]), { stdout: "pipe", stderr: "pipe" })
  try {
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ])
    if (code !== 0) throw new Error(`load generator failed (${code}): ${err.slice(0, 2000)}`)
    return JSON.parse(out) as LoadResult
  } finally {
    proc.kill("SIGKILL")
  }
}

const nodeId = (i: number) => `hb-${String(i).padStart(5, "0")}`

export const loadAverage = async () => Number((await readFile("/proc/loadavg", "utf8")).split(" ")[0])

/** The PostgreSQL server listening on `port` and its backends: the postmaster and its children. */
async function postgresPids(port: string): Promise<number[]> {
  const procs = await Promise.all(
    (await readdir("/proc"))
      .filter((d) => /^\d+$/.test(d))
      .map(async (d) => {
        const [cmdline, stat] = await Promise.all([
          readFile(`/proc/${d}/cmdline`, "utf8").catch(() => ""),
          readFile(`/proc/${d}/stat`, "utf8").catch(() => ""),
        ])
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
        return { pid: Number(d), ppid, cmdline: cmdline.split("\0") }
      }),
  )
  const master = procs.find((p) => p.cmdline[0]?.endsWith("postgres") && p.cmdline.join(" ").includes(`-p ${port}`))
  if (!master) return []
  return [master.pid, ...procs.filter((p) => p.ppid === master.pid).map((p) => p.pid)]
}

/** N agents through the real API, `parallel` at a time: a join token bound to each, then its enrolment. */
export async function heartbeatBench(opts: HeartbeatOptions): Promise<HeartbeatResults> {
  const dir = await mkdtemp(join(tmpdir(), "chimera-bench-hb-"))
  const procs: Subprocess[] = []
  const loadBefore = await loadAverage()
  const replicas = opts.databaseUrl ? (opts.replicas ?? 1) : 1
  try {
    // One full turn of the nodes before counting: the first heartbeat after enrolment (or after a
    // pause long enough to mark a node unreachable) is the unusual one, with its own event.
    const warmupSeconds = Math.max(3, Math.ceil((1.5 * opts.nodes) / opts.rate))
    const base = {
      rate: opts.rate,
      seconds: opts.seconds,
      warmupSeconds,
      connections: opts.connections,
      timeoutMs: 10_000,
    }
    const describe = `${opts.rate}/s for ${opts.seconds} s (+${warmupSeconds} s warm-up)`

    // The peer first, alone on its core: a control plane idling beside it would still sweep 20,000
    // silent nodes into unreachable and write an event for each, on the peer's core.
    const peerPort = freePort()
    const peerUrl = `http://127.0.0.1:${peerPort}`
    const peer = Bun.spawn(pinned(CORES.server, barePeerArgv(peerPort)), {
      env: { ...process.env, ...opts.env },
      stdout: "ignore",
      stderr: "ignore",
    })
    procs.push(peer)
    await waitUp(peerUrl, peer, "the bare Bun.serve peer")
    // Credentials of the real ones' shape: the peer checks none, but the requests are the same size.
    const fake = Array.from({ length: opts.nodes }, (_, i) => ({
      id: nodeId(i),
      credential: `chm_node_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}`,
    }))
    const peers: LoadResult[] = []
    for (let round = 0; round < opts.rounds; round++) {
      log(`  peer, round ${round + 1}/${opts.rounds}: ${describe}…`)
      peers.push(await runLoad(dir, "load", { ...base, urls: [peerUrl], nodes: fake, serverPids: [peer.pid] }))
    }
    await stopProc(peer)

    // The second peer, on SQLite's rows only: a heartbeat server written for that alone, doing a
    // heartbeat's work (heartbeat-peer.ts), with the same nodes enrolled in its own database.
    const workedPeers: LoadResult[] = []
    if (!opts.databaseUrl) {
      const workedPort = freePort()
      const workedUrl = `http://127.0.0.1:${workedPort}`
      const worked = Bun.spawn(pinned(CORES.server, await heartbeatPeerArgv(workedPort, dir, fake)), {
        env: { ...process.env, ...opts.env },
        stdout: "ignore",
        stderr: "inherit",
      })
      procs.push(worked)
      await waitUp(workedUrl, worked, "the heartbeat peer (heartbeat-peer.ts)")
      for (let round = 0; round < opts.rounds; round++) {
        log(`  heartbeat peer, round ${round + 1}/${opts.rounds}: ${describe}…`)
        const result = await runLoad(dir, "load", { ...base, urls: [workedUrl], nodes: fake, serverPids: [worked.pid] })
        if (result.errors > 0 || Object.keys(result.statuses).some((s) => s !== "200"))
          throw new Error(
            `the heartbeat peer did not answer 200 to every heartbeat: ${JSON.stringify(result.statuses)}`,
          )
        workedPeers.push(result)
      }
      await stopProc(worked)
    }

    const ports = Array.from({ length: replicas }, () => freePort())
    const cpUrls = ports.map((p) => `http://127.0.0.1:${p}`)
    const cpUrl = cpUrls[0] as string
    const startCp = async (profile: string[], r = 0) => {
      const { proc } = await startWeb({
        root: ROOT,
        core: r === 0 ? CORES.server : CORES.load,
        dataDir: join(dir, `data-${r}`),
        logFile: join(dir, `control-plane-${r}.log`),
        name: "hb",
        port: ports[r],
        runtime: profile,
        env: { ...(opts.databaseUrl ? { CHIMERA_DB: opts.databaseUrl } : {}), ...opts.env },
      })
      procs.push(proc)
      return proc
    }
    let cp = await startCp([])
    const adminToken = (await readFile(join(dir, "data-0", "admin.token"), "utf8")).trim()
    // The other replicas start once the first has migrated the database and made the admin token.
    const others = await Promise.all(Array.from({ length: replicas - 1 }, (_, k) => startCp([], k + 1)))

    log(`  enrolling ${opts.nodes} agents through the API…`)
    const t0 = performance.now()
    const nodes = await enrol(cpUrl, adminToken, opts.nodes, nodeId)
    const enrolSeconds = (performance.now() - t0) / 1000
    // CHIMERA_BENCH_PROFILE=DIR: a CPU profile (markdown) of the heartbeats alone, written when the
    // control plane stops; it is restarted on the same data for that, after the enrolments.
    const profileDir = process.env.CHIMERA_BENCH_PROFILE
    if (profileDir) {
      await stopProc(cp)
      cp = await startCp(["--cpu-prof-md", `--cpu-prof-dir=${profileDir}`])
    }
    const chimera: LoadResult[] = []
    for (let round = 0; round < opts.rounds; round++) {
      log(`  chimera, round ${round + 1}/${opts.rounds}: ${describe}…`)
      const databasePids = opts.databaseUrl ? await postgresPids(new URL(opts.databaseUrl).port) : []
      const result = await runLoad(dir, "load", {
        ...base,
        urls: cpUrls,
        nodes,
        serverPids: [cp.pid, ...others.map((p) => p.pid)],
        databasePids,
      })
      if (result.errors > 0) {
        log(`    ${result.errors} errors; answers: ${JSON.stringify(result.statuses)}`)
        const tail = (await readFile(join(dir, "control-plane-0.log"), "utf8").catch(() => "")).slice(-1500)
        if (tail) log(`    the control plane's log ends:\n${tail}`)
      }
      chimera.push(result)
    }
    const mem = await memory(cp.pid)
    return {
      opts: { ...opts, replicas },
      enrolSeconds,
      chimera,
      peer: peers,
      workedPeer: workedPeers,
      ...mem,
      cores: CORES,
      loadAverage: [loadBefore, await loadAverage()],
    }
  } finally {
    for (const p of procs.reverse()) await stopProc(p)
    await rm(dir, { recursive: true, force: true })
  }
}

const n0 = (x: number) => Math.round(x).toLocaleString("en")

/** What each of a Bun process's threads does (heartbeat-load.ts serverThreadsPercent's names). */
const THREADS =
  "`main` is the event loop, where every request is answered; `JSCWarmUp` faults in new blocks for the garbage-collected heap; `HeapHelper` marks for the garbage collector; `mi-scavenger` returns freed memory to the kernel; `JITWorker` compiles hot JavaScript; `Worker` is the control plane's WAL checkpointer"

/**
 * A server's CPU per heartbeat by thread, largest first, in µs; with replicas, the first one's per
 * heartbeat it answered (node k heartbeats to replica k mod R: its share is 1/R).
 */
function byThread(xs: LoadResult[], replicas = 1): string {
  const names = [...new Set(xs.flatMap((x) => Object.keys(x.serverThreadsPercent ?? {})))]
  const perBeat = names
    .map((name) => ({
      name,
      us: median(xs.map((x) => ((x.serverThreadsPercent?.[name] ?? 0) * 10_000 * replicas) / x.achievedPerSecond)),
    }))
    .filter((t) => t.us >= 0.5)
    .sort((a, b) => b.us - a.us)
  return perBeat.map((t) => `${t.name} ${t.us.toFixed(0)} µs`).join(", ")
}

const HEARTBEAT_HEADING = "### Heartbeat ingest"

export function heartbeatTable(all: HeartbeatResults[]): string {
  const rows: string[] = []
  const notes: string[] = []
  for (const r of all) {
    const m = (xs: LoadResult[], pick: (x: LoadResult) => number) => median(xs.map(pick))
    /** Server CPU time per answered heartbeat, in µs: what one heartbeat costs the server's core. */
    const perBeat = (xs: LoadResult[]) => m(xs, (x) => (x.serverCpuPercent * 10_000) / x.achievedPerSecond)
    const kernelPerBeat = (xs: LoadResult[]) =>
      m(xs, (x) => ((x.serverKernelPercent ?? Number.NaN) * 10_000) / x.achievedPerSecond)
    const dbPerBeat = (xs: LoadResult[]) =>
      m(xs, (x) => ((x.databaseCpuPercent ?? Number.NaN) * 10_000) / x.achievedPerSecond)
    const dbCell = (xs: LoadResult[]) => (Number.isNaN(dbPerBeat(xs)) ? "–" : `${dbPerBeat(xs).toFixed(0)} µs`)
    const line = (name: string, xs: LoadResult[], rss: string) =>
      `| ${name} | ${n0(r.opts.nodes)} | ${n0(r.opts.rate)} | ${n0(m(xs, (x) => x.achievedPerSecond))} | ${f1(m(xs, (x) => x.p50Ms))} | ${f1(m(xs, (x) => x.p99Ms))} | ${f1(m(xs, (x) => x.maxMs))} | ${xs.reduce((a, x) => a + x.errors, 0)} | ${m(xs, (x) => x.serverCpuPercent).toFixed(0)} % | ${perBeat(xs).toFixed(0)} µs (kernel ${kernelPerBeat(xs).toFixed(0)}) | ${dbCell(xs)} | ${rss} | ${m(xs, (x) => x.generatorCpuPercent).toFixed(0)} % |`
    const replicas = r.opts.replicas ?? 1
    const label = `${r.opts.label ?? "SQLite"}${replicas > 1 ? `, ${replicas} replicas` : ""}`
    rows.push(line(`chimera web, ${label}`, r.chimera, `${r.rssMb.toFixed(0)} MB (peak ${r.peakRssMb.toFixed(0)})`))
    const env = Object.entries(r.opts.env ?? {}).map(([k, v]) => `, ${k}=${v}`)
    rows.push(line(`peer: bare Bun.serve${env.join("")}`, r.peer, "–"))
    const worked = r.workedPeer ?? []
    if (worked.length) rows.push(line(`peer: heartbeat-peer.ts${env.join("")}`, worked, "–"))
    notes.push(
      `- ${label}, ${n0(r.opts.rate)}/s offered: a heartbeat costs Chimera **${(perBeat(r.chimera) / perBeat(r.peer)).toFixed(1)}×** the peer's server CPU, p99 ${(m(r.chimera, (x) => x.p99Ms) / m(r.peer, (x) => x.p99Ms)).toFixed(1)}× the peer's. Enrolling ${n0(r.opts.nodes)} agents through the API (a join token and an enrolment each, 32 at a time) took ${r.enrolSeconds.toFixed(0)} s (${n0(r.opts.nodes / r.enrolSeconds)}/s). Load average ${r.loadAverage[0].toFixed(1)} before, ${r.loadAverage[1].toFixed(1)} after.`,
      ...(worked.length
        ? [
            `  - Against the peer that does a heartbeat's work (heartbeat-peer.ts, ${perBeat(worked).toFixed(0)} µs, ${(perBeat(worked) / perBeat(r.peer)).toFixed(1)}× the bare one): Chimera **${(perBeat(r.chimera) / perBeat(worked)).toFixed(1)}×**.`,
          ]
        : []),
      `  - CPU per heartbeat by thread${replicas > 1 ? " (the first replica's)" : ""}: ${byThread(r.chimera, replicas) || "not measured"}. The peer's: ${byThread(r.peer) || "not measured"}.`,
    )
  }
  const r0 = all[0]
  return [
    `${HEARTBEAT_HEADING} (target: 10,000/s sustained from 20,000 agents, p99 < 50 ms)`,
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} on ${navigator.hardwareConcurrency} cores, Bun ${Bun.version} (\`bun scripts/bench.ts --only heartbeats\`). \`chimera web\` runs as a child process pinned to core ${r0?.cores.server} (\`taskset\`); every agent is enrolled through the real API and heartbeats with its own credential. A load generator in its own process, pinned to core ${r0?.cores.load}, drives heartbeats open-loop over ${n0(r0?.opts.connections ?? 0)} keep-alive connections: each is due at a fixed time, and latency counts from then, so a server that falls behind shows as latency and lower throughput, not as a politely slower client. ${r0?.opts.seconds} s counted per round after a warm-up of one turn of all agents; medians of ${r0?.opts.rounds} rounds, errors summed. Server CPU is the server process's over the counted window (100 % = one core), and of a heartbeat's CPU the kernel's part (system time: sockets, file writes) is shown apart; RSS is the control plane's after its last round. The peer, in the same run on the same core with the same requests, is a bare \`Bun.serve\` that reads the body and answers 200 with no work: the HTTP floor. Beside SQLite, a second peer, \`scripts/bench/heartbeat-peer.ts\`, is a heartbeat server written for that alone in one small file: the same route, credential, rate limit, body check, held heartbeat and batched SQLite writes, with nothing else around them (its header lists what it leaves out): what a heartbeat's work costs at least on this runtime. With two replicas (PostgreSQL), the second runs on core ${r0?.cores.load} beside the load generator, node k heartbeats to replica k mod 2, and server CPU is both replicas' together; PostgreSQL's own processes (unpinned) are counted in their own column. Each note's CPU by thread is read from \`/proc/PID/task\`: ${THREADS}.`,
    "",
    "| server | agents | offered /s | achieved /s | p50 ms | p99 ms | max ms | errors | server CPU | CPU per heartbeat | PostgreSQL CPU per heartbeat | server RSS | generator CPU |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows,
    "",
    ...notes,
  ].join("\n")
}
