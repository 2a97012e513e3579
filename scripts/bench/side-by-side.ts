#!/usr/bin/env bun
// Two heartbeat servers measured side by side: this checkout's control plane (A) and either another
// checkout's (B, --base DIR), the bare Bun.serve peer (--base peer) or the peer that does a heartbeat's
// work (--base heartbeat-peer, heartbeat-peer.ts), both pinned to the same core
// and running at once, each with its own 20,000 enrolled agents, the load generator interleaving their
// heartbeats (node k goes to server k mod 2). Each window reads both servers' CPU from /proc, so both
// meet the same machine at the same moment: the ratio A/B of one window varies by about ±4 %, where
// two separate runs of the same code (scripts/bench.ts --only heartbeats) differ by 10-15 %.
//
// It answers "is this change cheaper?" in about three minutes, not the benchmark's absolute figure:
// two servers sharing one core each run at half the rate and evict each other's caches, so a
// heartbeat costs more here (about 95 µs against 78 at 7,000/s alone) and the ratio to the peer reads
// lower (2.4× against 2.9×). BENCHMARKS.md's table comes from scripts/bench.ts.
//
// usage: bun scripts/bench/side-by-side.ts --base DIR|peer|heartbeat-peer [--nodes N] [--rate R] [--rounds N]
//          [--window S] [--warmup S]
//   --base DIR   another checkout (with its node_modules) whose control plane is B; `peer`: the bare
//                Bun.serve of scripts/bench/heartbeats.ts, given the same requests; `heartbeat-peer`:
//                scripts/bench/heartbeat-peer.ts, with A's agents enrolled in its own database
//   --nodes N    agents enrolled in each control plane (20000)
//   --rate R     heartbeats a second offered to the two together (8000)
//   --rounds N   counted windows (6), of --window S seconds (8), after --warmup S seconds (30)
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import type { Subprocess } from "bun"
import { freePort } from "../../tests/support/control-plane.ts"
import {
  barePeerArgv,
  CORES,
  type EnrolledNode,
  enrol,
  heartbeatPeerArgv,
  log,
  median,
  pinned,
  startWeb,
  stopProc,
  waitUp,
} from "./common.ts"
import type { LoadResult } from "./heartbeat-load.ts"
import { cpuTicks } from "./proc-stat.ts"

const ROOT = resolve(import.meta.dir, "../..")
const LOAD = join(import.meta.dir, "heartbeat-load.ts")
const USAGE = `usage: bun scripts/bench/side-by-side.ts --base DIR|peer|heartbeat-peer [--nodes N] [--rate R] [--rounds N] [--window S] [--warmup S]
(each flag is described at the top of scripts/bench/side-by-side.ts)`

function fail(message: string): never {
  process.stderr.write(`side-by-side: ${message}\n${USAGE}\n`)
  process.exit(2)
}

interface Options {
  base: string
  nodes: number
  rate: number
  rounds: number
  window: number
  warmup: number
}

function options(argv: string[]): Options {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: argv,
      options: {
        base: { type: "string" },
        nodes: { type: "string", default: "20000" },
        rate: { type: "string", default: "8000" },
        rounds: { type: "string", default: "6" },
        window: { type: "string", default: "8" },
        warmup: { type: "string", default: "30" },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values
  } catch (error) {
    fail((error as Error).message)
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const base = values.base
  if (typeof base !== "string") fail("--base: give another checkout's directory, `peer` or `heartbeat-peer`")
  const named = base === "peer" || base === "heartbeat-peer"
  if (!named && !existsSync(join(base, "control/main.ts")))
    fail(`--base: ${base} has no control/main.ts; give a checkout of Chimera, \`peer\` or \`heartbeat-peer\``)
  const whole = (name: "nodes" | "rate" | "rounds" | "window" | "warmup", min: number) => {
    const n = Number(values[name])
    if (!Number.isInteger(n) || n < min) fail(`--${name}: expected a whole number of at least ${min}`)
    return n
  }
  return {
    base: named ? base : resolve(base),
    nodes: whole("nodes", 100),
    rate: whole("rate", 100),
    rounds: whole("rounds", 1),
    window: whole("window", 2),
    warmup: whole("warmup", 5),
  }
}

interface Server {
  name: string
  url: string
  proc: Subprocess
  /** Its own agents; null for a peer, which is given A's (heartbeat-peer.ts enrols them in its own database). */
  nodes: EnrolledNode[] | null
}

/** A control plane of the checkout at `root`, on a fresh SQLite data dir, with `nodes` agents enrolled. */
async function controlPlane(name: string, root: string, dir: string, nodes: number): Promise<Server> {
  const dataDir = join(dir, name)
  const web = await startWeb({ root, core: CORES.server, dataDir, logFile: join(dir, `${name}.log`), name })
  const admin = (await readFile(join(dataDir, "admin.token"), "utf8")).trim()
  const id = (i: number) => `hb-${String(i).padStart(5, "0")}`
  return { name, url: web.url, proc: web.proc, nodes: await enrol(web.url, admin, nodes, id, 16) }
}

/** The bare peer, or heartbeat-peer.ts with `nodes` (A's) enrolled in its own database under `dir`. */
async function peer(kind: "peer" | "heartbeat-peer", dir: string, nodes: EnrolledNode[]): Promise<Server> {
  const port = freePort()
  const url = `http://127.0.0.1:${port}`
  const argv = kind === "heartbeat-peer" ? await heartbeatPeerArgv(port, dir, nodes) : barePeerArgv(port)
  const proc = Bun.spawn(pinned(CORES.server, argv), { stdin: "ignore", stdout: "ignore", stderr: "inherit" })
  await waitUp(url, proc, `the ${kind}`)
  return { name: kind, url, proc, nodes: null }
}

async function main() {
  const opts = options(process.argv.slice(2))
  const dir = await mkdtemp(join(tmpdir(), "chimera-side-by-side-"))
  const procs: Subprocess[] = []
  try {
    log(`enrolling ${opts.nodes} agents in each control plane…`)
    const base = opts.base
    const [a, b]: [Server, Server] =
      base === "peer" || base === "heartbeat-peer"
        ? await controlPlane("A", ROOT, dir, opts.nodes).then(async (a) => [a, await peer(base, dir, a.nodes ?? [])])
        : await Promise.all([controlPlane("A", ROOT, dir, opts.nodes), controlPlane("B", base, dir, opts.nodes)])
    procs.push(a.proc, b.proc)
    const aNodes = a.nodes ?? []
    const nodes = aNodes.flatMap((node, i) => [node, b.nodes?.[i] ?? node])
    const seconds = opts.warmup + opts.rounds * opts.window + 10
    const config = join(dir, "load.json")
    await writeFile(
      config,
      JSON.stringify({
        urls: [a.url, b.url],
        nodes,
        rate: opts.rate,
        seconds,
        warmupSeconds: 3,
        serverPids: [a.proc.pid],
        connections: 1000,
        timeoutMs: 10_000,
      }),
    )
    const load = Bun.spawn(pinned(CORES.load, [process.execPath, LOAD, config]), { stdout: "pipe", stderr: "pipe" })
    procs.push(load)
    log(
      `${opts.rate}/s to the two together; ${opts.warmup} s of warm-up, then ${opts.rounds} windows of ${opts.window} s…`,
    )
    await Bun.sleep(opts.warmup * 1000)
    const perBeat: [number[], number[]] = [[], []]
    const servers = [a, b] as const
    for (let round = 0; round < opts.rounds; round++) {
      const before = await Promise.all(servers.map((s) => cpuTicks(s.proc.pid)))
      const t0 = performance.now()
      await Bun.sleep(opts.window * 1000)
      const after = await Promise.all(servers.map((s) => cpuTicks(s.proc.pid)))
      const beats = ((opts.rate / 2) * (performance.now() - t0)) / 1000
      const cells = servers.map((s, i) => {
        const total = (((after[i]?.total ?? 0) - (before[i]?.total ?? 0)) * 1e6) / beats
        const system = (((after[i]?.kernel ?? 0) - (before[i]?.kernel ?? 0)) * 1e6) / beats
        perBeat[i as 0 | 1].push(total)
        return `${s.name} ${total.toFixed(1)} µs (kernel ${system.toFixed(1)})`
      })
      const ratio = (perBeat[0].at(-1) ?? 0) / (perBeat[1].at(-1) ?? 1)
      console.log(`window ${round + 1}: ${cells.join(", ")}; A/${b.name} ${ratio.toFixed(3)}`)
    }
    const [out, code] = await Promise.all([new Response(load.stdout).text(), load.exited])
    const result = code === 0 ? (JSON.parse(out) as LoadResult) : null
    const ratios = perBeat[0].map((x, i) => x / (perBeat[1][i] ?? Number.NaN))
    console.log(
      `A ${median(perBeat[0]).toFixed(1)} µs, ${b.name} ${median(perBeat[1]).toFixed(1)} µs a heartbeat (medians); ` +
        `A/${b.name} ${median(ratios).toFixed(3)} (median of the windows' ratios, ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)})`,
    )
    if (result)
      console.log(
        `load: ${result.achievedPerSecond.toFixed(0)}/s of ${opts.rate}/s answered, ${result.errors} errors, p99 ${result.p99Ms.toFixed(1)} ms`,
      )
    else log(`the load generator failed (${code}): ${(await new Response(load.stderr).text()).slice(0, 2000)}`)
  } finally {
    await Promise.all(procs.map(stopProc))
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
