#!/usr/bin/env bun
// Chimera's benchmarks: its performance targets (drift to heal, heartbeat ingest, relay, dashboard, …),
// measured on real parts, with medians and ratios against a peer measured in the same run.
//
// usage: bun scripts/bench.ts [--drifts N] [--ssh-rounds N] [--only ssh] [--write]
//   --drifts N      drifts per scenario (default 50)
//   --ssh-rounds N  rounds of the SSH fan-out per tool (default 10)
//   --only ssh      run only the SSH fan-out (scripts/bench/ssh-fanout.ts)
//   --only core-loop  run only drift to heal, the agent at rest and `chimera --help`
//                   (scripts/bench/core-loop.ts)
//   --only relay    run only the relay through 1,000 simulated agents (scripts/bench/relay.ts)
//   --only rpc      run only a 200-turn `chimera code --mode rpc` session with compaction: its memory
//                   (scripts/bench/rpc.ts)
//   --only attack   run only the outside attack: idle event streams, report floods, nested bodies
//                   (scripts/bench/attack-streams.ts; about 90 s, no Nix needed)
//   --only mcp      run only check_congruence over MCP against `chimera watch --once` (scripts/bench/mcp-congruence.ts)
//   --only dashboard  run only the web dashboard with 1,000 nodes in Chromium (scripts/bench/dashboard.ts)
//   --only incidents  run only the network split: 1,000 agents silent at once, an incident and its
//                   notifications each, heartbeats of the rest timed (scripts/bench/incidents.ts)
//   --only heartbeats  run only heartbeat ingest (scripts/bench/heartbeats.ts; no Nix needed)
//   --hb-nodes N, --hb-rates R,R, --hb-seconds N, --hb-rounds N, --hb-connections N, --hb-postgres
//                   heartbeat ingest: agents (20000), offered rates per second, one row each
//                   (10000,7000), counted seconds per round (20), rounds (3), the load generator's
//                   keep-alive connections (1000), and PostgreSQL (one replica, then two) as well as SQLite
//                   (--hb-postgres-only: PostgreSQL alone); --hb-keep-freed adds SQLite at the last rate
//                   with MIMALLOC_PURGE_DELAY=-1 for the control plane and the peer alike (the runtime's
//                   allocator then keeps freed memory instead of returning it to the kernel)
//   --only attack-auth  run only the open doors under attack (scripts/bench/attack-auth.ts): an
//                   enrolment flood and a distributed login flood against a quiet run; with
//                   --control-root DIR, also another checkout's control plane (a before/after)
//   --only replicas  run only two replicas on PostgreSQL (scripts/bench/replicas.ts): cross-replica
//                   delivery over --rep-tries tries (20) and a replica SIGKILLed under --rep-agents
//                   simulated agents (1000) over --rep-seconds (20); no Nix needed
//   --only ai       run only the AI chat loop's own cost per turn over a scripted model (scripts/bench/ai.ts;
//                   no Nix needed)
//   --write         also put the tables in BENCHMARKS.md, each in place of its section (matched by its
//                   heading, scripts/bench/benchmarks-file.ts); sections this run did not measure stay
//
// What it measures:
//   drift to heal  A test node (its own /run and system profile) runs the compiled agent,
//                  enrolled in a control plane, with generation 1 desired. The script makes it drift
//                  (runtime drift: /run/current-system swapped atomically, as `switch-to-configuration
//                  test` would; and a full manual switch: `nix-env --set` + `switch-to-configuration
//                  switch`) and times until profile and current system are generation 1 again.
//                  Peer: the same agent with --no-watch, polling every second, which is what a
//                  polling agent does at best (comin polls every 60 s, bento every 15 min).
//   agent          RSS and CPU of the compiled agent idling (heartbeat every 5 s) for 60 s.
//   CLI            `chimera --help`, compiled and from source.
//   SSH fan-out    One command on 20 testbed nodes (tests/support/testbed.ts: real sshd per node, on its
//                  own loopback address) with `chimera exec` (the compiled CLI, and from source), and in
//                  the same run with the peers: parallel-ssh (pssh) and ansible ad hoc (-m raw, forks
//                  20), host keys checked against the testbed's known_hosts by all. Rounds alternate the
//                  tools' order; every run must print all 20 nodes' current system to count.
//   heartbeats     `chimera web` as a child process on its own core, 20,000 agents enrolled through the
//                  API, heartbeats driven open-loop from a load generator on the other core; peer: a
//                  bare Bun.serve answering 200 without work, same requests, same core
//                  (scripts/bench/heartbeats.ts).
// Needs root (mount namespaces) and Nix; run `bun scripts/system-deps.ts --bench` first (pssh, ansible).
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { setLogLevel } from "../protocol/log.ts"
import { startInProcess } from "../tests/support/control-plane.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { runOk } from "../tests/support/tools.ts"
import { attackAuthBench, attackAuthTable } from "./bench/attack-auth.ts"
import { attackBench, attackTable } from "./bench/attack-streams.ts"
import { replaceSections } from "./bench/benchmarks-file.ts"
import { coreLoopBench, coreLoopTable, helpTimes } from "./bench/core-loop.ts"
import { type HeartbeatResults, heartbeatBench, heartbeatTable } from "./bench/heartbeats.ts"
import { mcpCongruenceBench, mcpCongruenceTable } from "./bench/mcp-congruence.ts"
import { relayBench, relayTable } from "./bench/relay.ts"
import { SSH_PEERS, sshFanout, sshTable } from "./bench/ssh-fanout.ts"

const USAGE = `usage: bun scripts/bench.ts [--drifts N] [--ssh-rounds N] [--only ssh|core-loop|relay|heartbeats|mcp|attack-auth|attack|dashboard|replicas|incidents|ai|rpc] [--write]
       [--hb-nodes N] [--hb-rates R,R] [--hb-seconds N] [--hb-rounds N] [--hb-connections N] [--hb-postgres] [--hb-keep-freed]
(each flag is described at the top of scripts/bench.ts)`
/** A bad flag: one line that says what is wrong, the usage, exit 2; no stack trace. */
function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`)
  process.exit(2)
}
/** BENCHMARKS.md with these sections in place of theirs (benchmarks-file.ts); the others are kept. */
async function writeSections(produced: string) {
  const path = join(import.meta.dir, "..", "BENCHMARKS.md")
  const old = await readFile(path, "utf8").catch(() => "# Benchmarks\n")
  await Bun.write(path, replaceSections(old, produced))
}
if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
const parsed = (() => {
  try {
    return parseArgs({
      options: {
        drifts: { type: "string", default: "50" },
        "ssh-rounds": { type: "string", default: "10" },
        "hb-nodes": { type: "string", default: "20000" },
        "hb-rates": { type: "string", default: "10000,7000" },
        "hb-seconds": { type: "string", default: "20" },
        "hb-rounds": { type: "string", default: "3" },
        "hb-connections": { type: "string", default: "1000" },
        "hb-postgres": { type: "boolean", default: false },
        "hb-postgres-only": { type: "boolean", default: false },
        "hb-keep-freed": { type: "boolean", default: false },
        "rep-tries": { type: "string", default: "20" },
        "rep-agents": { type: "string", default: "1000" },
        "rep-seconds": { type: "string", default: "20" },
        only: { type: "string" },
        "control-root": { type: "string" },
        write: { type: "boolean", default: false },
      },
    })
  } catch (error) {
    fail((error as Error).message)
  }
})()
const { values } = parsed
const DRIFTS = Number(values.drifts)
if (!Number.isInteger(DRIFTS) || DRIFTS < 5) fail("--drifts: expected a whole number of at least 5")
const SSH_ROUNDS = Number(values["ssh-rounds"])
if (!Number.isInteger(SSH_ROUNDS) || SSH_ROUNDS < 3) fail("--ssh-rounds: expected a whole number of at least 3")
const ALONE = [
  "core-loop",
  "ssh",
  "relay",
  "heartbeats",
  "mcp",
  "attack-auth",
  "dashboard",
  "attack",
  "replicas",
  "incidents",
  "ai",
  "rpc",
]
if (values.only !== undefined && !ALONE.includes(values.only))
  fail(`--only: the sections that run alone are ${ALONE.map((s) => `"${s}"`).join(", ")}`)
/** When and where a section was measured, the first words of its note. */
const measured = () =>
  `Measured ${new Date().toISOString().slice(0, 10)} on ${navigator.hardwareConcurrency} cores, Bun ${Bun.version}`
/** A section run alone: printed, and with --write put in BENCHMARKS.md in place of its old one. */
async function emit(section: string): Promise<never> {
  process.stdout.write(`${section}\n`)
  if (values.write) {
    await writeSections(section)
    process.stderr.write("wrote its section of BENCHMARKS.md\n")
  }
  process.exit(0)
}
const whole = (name: "hb-nodes" | "hb-seconds" | "hb-rounds" | "hb-connections", min: number) => {
  const n = Number(values[name])
  if (!Number.isInteger(n) || n < min) fail(`--${name}: expected a whole number of at least ${min}`)
  return n
}
const HB = {
  nodes: whole("hb-nodes", 1),
  rates: String(values["hb-rates"])
    .split(",")
    .map((r) => {
      const n = Number(r)
      if (!Number.isInteger(n) || n < 1) fail(`--hb-rates: expected whole numbers, got ${JSON.stringify(r)}`)
      return n
    }),
  seconds: whole("hb-seconds", 1),
  rounds: whole("hb-rounds", 1),
  connections: whole("hb-connections", 1),
}
if (values.only === "replicas") {
  const { replicasBench, replicasTable } = await import("./bench/replicas.ts")
  setLogLevel("error")
  const count = (name: "rep-tries" | "rep-agents" | "rep-seconds", min: number) => {
    const n = Number(values[name])
    if (!Number.isInteger(n) || n < min) fail(`--${name}: expected a whole number of at least ${min}`)
    return n
  }
  const opts = { tries: count("rep-tries", 1), agents: count("rep-agents", 2), runSeconds: count("rep-seconds", 4) }
  await emit(replicasTable(await replicasBench(opts)))
}
if (values.only === "dashboard") {
  const { dashboardBench, dashboardTable } = await import("./bench/dashboard.ts")
  const results = await dashboardBench({ nodes: 1000, renders: 10, events: 30 })
  await emit(dashboardTable(results, measured()))
}
if (values.only === "ai") {
  const { aiBench, aiTable } = await import("./bench/ai.ts")
  await emit(aiTable(await aiBench({ turns: 50 }), measured()))
}
if (values.only === "mcp") {
  process.stderr.write("check_congruence over MCP against chimera watch --once, 20 testbed nodes, 10 rounds…\n")
  await emit(mcpCongruenceTable(await mcpCongruenceBench({ nodes: 20, rounds: 10 })))
}
if (values.only === "attack-auth") {
  const runs = [{ label: "this checkout", results: await attackAuthBench() }]
  const other = values["control-root"]
  if (other) runs.unshift({ label: `\`${other}\``, results: await attackAuthBench({ controlRoot: other }) })
  await emit(attackAuthTable(runs))
}
if (values.only === "attack") {
  await emit(attackTable(await attackBench()))
}
if (values.only === "incidents") {
  const { incidentBench, incidentTable } = await import("./bench/incidents.ts")
  await emit(incidentTable(await incidentBench({ split: 1000, quiet: 200, seconds: 20 })))
}
if (values.only === "rpc") {
  const { rpcBench, rpcTable } = await import("./bench/rpc.ts")
  await emit(rpcTable(await rpcBench({ turns: 200 }), measured()))
}
if (values.only === "relay") {
  await emit(relayTable(await relayBench({ nodes: 1000, rounds: 5 })))
}
// The peers are Debian packages that plain `npm test` does not need; say which is missing before any work.
for (const [tool, pkg] of values.only === "heartbeats" || values.only === "core-loop" ? [] : SSH_PEERS) {
  if (!Bun.which(tool))
    throw new Error(
      `the SSH fan-out benchmark needs \`${tool}\` (Debian package ${pkg}): run \`bun scripts/system-deps.ts --bench\` as root`,
    )
}

const ROOT = join(import.meta.dir, "..")
const work = await mkdtemp(join(tmpdir(), "chimera-bench-"))
const agentBin = join(work, "chimera-agent")
const cliBin = join(work, "chimera")
const log = (s: string) => process.stderr.write(`${s}\n`)

/** Heartbeat ingest at each offered rate, on SQLite (and PostgreSQL with --hb-postgres). */
async function heartbeats(): Promise<string> {
  const results: HeartbeatResults[] = []
  const base = { nodes: HB.nodes, seconds: HB.seconds, rounds: HB.rounds, connections: HB.connections }
  for (const rate of values["hb-postgres-only"] ? [] : HB.rates) {
    log(`heartbeat ingest, SQLite: ${HB.nodes} agents at ${rate}/s…`)
    results.push(await heartbeatBench({ ...base, rate }))
  }
  const last = HB.rates.at(-1)
  if (values["hb-keep-freed"] && last !== undefined) {
    log(`heartbeat ingest, SQLite, freed memory kept: ${HB.nodes} agents at ${last}/s…`)
    const env = { MIMALLOC_PURGE_DELAY: "-1" }
    results.push(await heartbeatBench({ ...base, rate: last, env, label: "SQLite, MIMALLOC_PURGE_DELAY=-1" }))
  }
  if (values["hb-postgres"] || values["hb-postgres-only"]) {
    const { startPostgres } = await import("../tests/support/postgres.ts")
    await using pg = await startPostgres()
    for (const replicas of [1, 2])
      for (const rate of HB.rates) {
        log(`heartbeat ingest, PostgreSQL, ${replicas} replica(s): ${HB.nodes} agents at ${rate}/s…`)
        const databaseUrl = await pg.database(`bench_hb_${replicas}_${rate}`)
        results.push(await heartbeatBench({ ...base, rate, databaseUrl, replicas, label: "PostgreSQL" }))
      }
  }
  return heartbeatTable(results)
}

if (values.only === "heartbeats") {
  setLogLevel("error")
  const section = await heartbeats()
  await rm(work, { recursive: true, force: true })
  await emit(section)
}

log("building the agent and the CLI (scripts/build.ts)…")
// As `bun run build` builds them (scripts/build.ts): what operators and NixOS nodes run.
await runOk([process.execPath, join(ROOT, "scripts/build.ts"), "--outdir", work])
const [gen1, gen2] = await Promise.all([buildTestSystem(1), buildTestSystem(2)])
const core = coreLoopBench({ agentBin, gen1, gen2 })

setLogLevel("error") // nodes going unreachable after each scenario are expected here
if (values.only === "ssh") {
  log(`SSH fan-out to 20 nodes: chimera, pssh, ansible, ${SSH_ROUNDS} rounds each…`)
  let section: string
  try {
    section = sshTable(await sshFanout({ rounds: SSH_ROUNDS, cliBin, gen1 }), SSH_ROUNDS)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
  await emit(section)
}
const cp = await startInProcess()
try {
  log(`drift to heal, event-driven: ${DRIFTS} runtime drifts, ${DRIFTS} manual switches…`)
  const runtime = await core.driftScenario(cp, "bench-runtime", [], core.runtimeDrift, DRIFTS)
  const manual = await core.driftScenario(cp, "bench-manual", [], core.manualSwitch, DRIFTS)
  log(`peer, polling every 1 s (--no-watch): ${DRIFTS} runtime drifts…`)
  const polled = await core.driftScenario(
    cp,
    "bench-poll",
    ["--no-watch", "--drift-interval", "1"],
    core.runtimeDrift,
    DRIFTS,
  )
  log("agent at rest for 60 s…")
  const idle = await core.idleAgent(cp)
  log("chimera --help…")
  const helpCompiled = await helpTimes([cliBin, "--help"])
  const helpSource = await helpTimes([process.execPath, join(ROOT, "control/main.ts"), "--help"])
  if (values.only === "core-loop") {
    const how = `${measured()}, the agent and the CLI as \`bun run build\` builds them, real Nix and test nodes (\`bun scripts/bench.ts --only core-loop\`).`
    const section = coreLoopTable({ runtime, manual, polled, idle, helpCompiled, helpSource }, how)
    await cp.stop()
    await rm(work, { recursive: true, force: true })
    await emit(section)
  }
  log(`SSH fan-out to 20 nodes: chimera, pssh, ansible, ${SSH_ROUNDS} rounds each…`)
  const fanout = await sshFanout({ rounds: SSH_ROUNDS, cliBin, gen1 })
  const ingest = await heartbeats()
  log("relay through 1,000 simulated agents, 5 rounds…")
  const relayed = await relayBench({ nodes: 1000, rounds: 5 })

  const table = [
    `${measured()}, compiled agent, real Nix and test nodes (\`bun scripts/bench.ts\`).`,
    "",
    coreLoopTable(
      { runtime, manual, polled, idle, helpCompiled, helpSource },
      "The agent and the CLI as `bun run build` builds them; in this run.",
    ),
    "",
    sshTable(fanout, SSH_ROUNDS),
    "",
    relayTable(relayed),
    "",
    ingest,
  ].join("\n")
  process.stdout.write(`${table}\n`)
  if (values.write) {
    await writeSections(table)
    log("wrote its sections of BENCHMARKS.md")
  }
} finally {
  await cp.stop()
  await rm(work, { recursive: true, force: true })
}
