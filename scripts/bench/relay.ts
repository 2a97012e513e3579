// A command relayed through agents to 1,000 nodes and every result back (target: under 1 s). A real
// control plane (`chimera web`, its own data dir, SQLite) runs as a child process pinned to core 0;
// N nodes are enrolled through the real API (a join token each, then POST /api/agent/enroll); then
// scripts/bench/relay-load.ts, pinned to core 1, plays their agents: each holds the real long poll with
// its own credential and acks `run` commands at once WITHOUT running a process. What is timed is
// POST /api/fleet/run to all N, end to end, from this process: the relay's overhead, not a shell's.
// SSH fan-out has no comparable peer at 1,000 nodes here, so the baseline, in the same run and from
// the same load process, is N parallel GET /api/health round trips to the same control plane.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { CORES, enrol, f1, log, median, pinned, startWeb, stopProc } from "./common.ts"
import type { RelayLoadConfig } from "./relay-load.ts"

const ROOT = join(import.meta.dir, "../..")
const LOAD = join(import.meta.dir, "relay-load.ts")

export interface RelayBenchOptions {
  nodes: number
  rounds: number
}

export interface RelayBenchResults {
  opts: RelayBenchOptions
  enrolSeconds: number
  /** POST /api/fleet/run to all nodes, ms per round. */
  all: number[]
  /** POST /api/fleet/run to one node, ms per round. */
  one: number[]
  /** N parallel GET /api/health from the load process, ms per round. */
  health: number[]
  rssMb: number
}

const nodeId = (i: number) => `relay-${String(i).padStart(5, "0")}`

/** Line-oriented talk with the load process: one order, one JSON answer. */
function talk(proc: Subprocess<"pipe", "pipe", "pipe">) {
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader()
  let buffered = ""
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf("\n")
      if (nl >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        return line
      }
      const { value, done } = await lines.read()
      if (done) throw new Error(`the load process ended: ${await new Response(proc.stderr).text()}`)
      buffered += value
    }
  }
  return {
    nextLine,
    async ask<T>(order: string): Promise<T> {
      proc.stdin.write(`${order}\n`)
      proc.stdin.flush()
      return JSON.parse(await nextLine()) as T
    },
  }
}

export async function relayBench(opts: RelayBenchOptions): Promise<RelayBenchResults> {
  const dir = await mkdtemp(join(tmpdir(), "chimera-bench-relay-"))
  const procs: Subprocess[] = []
  try {
    const { url, proc: cp } = await startWeb({
      root: ROOT,
      core: CORES.server,
      dataDir: join(dir, "data"),
      logFile: join(dir, "control-plane.log"),
      name: "relay",
      // The relays themselves count once each.
      env: { CHIMERA_RATE_LIMITS_COMMANDS: "1000000000" },
    })
    procs.push(cp)
    const adminToken = (await readFile(join(dir, "data", "admin.token"), "utf8")).trim()

    log(`  enrolling ${opts.nodes} nodes through the API…`)
    const t0 = performance.now()
    const nodes = await enrol(url, adminToken, opts.nodes, nodeId)
    const enrolSeconds = (performance.now() - t0) / 1000

    log(`  ${opts.nodes} simulated agents take their long polls…`)
    const cfgPath = join(dir, "relay-load.json")
    await writeFile(cfgPath, JSON.stringify({ url, nodes } satisfies RelayLoadConfig))
    const load = Bun.spawn(pinned(CORES.load, [process.execPath, LOAD, cfgPath]), {
      // Bun's fetch holds at most 256 requests at once by default: 1,000 long polls need more.
      env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(opts.nodes * 2 + 100) },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    })
    procs.push(load)
    const agents = talk(load)
    const ready = await agents.nextLine()
    if (ready !== "ready") throw new Error(`the load process said ${JSON.stringify(ready)}`)

    const run = async (body: unknown, expectOk: number) => {
      const t = performance.now()
      const res = await fetch(`${url}/api/fleet/run`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      })
      const answer = (await res.json()) as { summary?: { ok: number }; error?: string }
      const ms = performance.now() - t
      if (res.status !== 200 || answer.summary?.ok !== expectOk)
        throw new Error(`relay: ${res.status} ${JSON.stringify(answer).slice(0, 500)}`)
      return ms
    }
    const all: number[] = []
    const one: number[] = []
    const health: number[] = []
    // One warm-up of each, not counted (JIT, first statements prepared, connections opened).
    await run({ command: "true", all: true, timeout: 10 }, opts.nodes)
    await run({ command: "true", nodes: [nodeId(0)], timeout: 10 }, 1)
    await agents.ask(`health ${opts.nodes}`)
    for (let round = 0; round < opts.rounds; round++) {
      log(`  round ${round + 1}/${opts.rounds}: relay to ${opts.nodes}, relay to 1, ${opts.nodes} × GET /api/health…`)
      all.push(await run({ command: "true", all: true, timeout: 10 }, opts.nodes))
      await Bun.sleep(500)
      one.push(await run({ command: "true", nodes: [nodeId(round % opts.nodes)], timeout: 10 }, 1))
      await Bun.sleep(500)
      const h = await agents.ask<{ ms: number; ok: number }>(`health ${opts.nodes}`)
      if (h.ok !== opts.nodes) throw new Error(`health baseline: ${h.ok}/${opts.nodes} answered`)
      health.push(h.ms)
      await Bun.sleep(500)
    }
    const stats = await agents.ask<{ acked: number; errors: number }>("stats")
    if (stats.errors > 0) throw new Error(`the simulated agents met ${stats.errors} errors`)
    const status = await readFile(`/proc/${cp.pid}/status`, "utf8")
    const rssMb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024
    return { opts, enrolSeconds, all, one, health, rssMb }
  } finally {
    for (const p of procs.reverse()) await stopProc(p)
    await rm(dir, { recursive: true, force: true })
  }
}

export function relayTable(r: RelayBenchResults): string {
  const n = r.opts.nodes.toLocaleString("en")
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${f1(median(xs))} | ${f1(Math.min(...xs))} | ${f1(Math.max(...xs))} |`
  const all = median(r.all)
  return [
    `### Command relayed through agents to ${n} nodes, all results back (target: under 1 s)`,
    "",
    `\`bun scripts/bench.ts --only relay\`: **relay overhead, simulated agents answer without running a process.** \`chimera web\` (SQLite) as a child process pinned to core ${CORES.server}; ${n} nodes enrolled through the real API (${r.enrolSeconds.toFixed(0)} s); a load process pinned to core ${CORES.load} plays their agents, each holding the real long poll (\`GET /api/agent/:id/commands?wait=25\`) with its own credential and acking each \`run\` command at once with a canned success. Timed: \`POST /api/fleet/run\` (\`true\`, all nodes) from request to the full answer, medians of ${r.all.length} rounds after one warm-up. The baseline, same run, same cores: ${n} parallel \`GET /api/health\` round trips from the load process to the same control plane.`,
    "",
    "| measure | rounds | median ms | min ms | max ms |",
    "|---|---:|---:|---:|---:|",
    row(`POST /api/fleet/run to ${n} simulated agents, all results back`, r.all),
    row("POST /api/fleet/run to 1 simulated agent", r.one),
    row(`baseline: ${n} parallel GET /api/health from the load process`, r.health),
    "",
    `Per node the relay costs **${((all - median(r.one)) / Math.max(1, r.opts.nodes - 1)).toFixed(2)} ms** beyond a one-node relay (${(all / r.opts.nodes).toFixed(2)} ms all in), **${(all / median(r.health)).toFixed(1)}×** the ${f1(median(r.health))} ms of ${n} trivial round trips: each relayed node is a long poll answered, an ack received (each authenticated, validated and written to the database: delivered, then acked), and the re-poll that follows. Control plane RSS after the rounds: ${r.rssMb.toFixed(0)} MB. The simulated agents send one heartbeat each with a 600 s interval, so none goes unreachable during the run. A real agent adds its shell's start-up and the command's own run time on each node, in parallel across nodes. SSH fan-out has no peer at this size here (the 20-node comparison is above).`,
  ].join("\n")
}
