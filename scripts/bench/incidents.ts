// A network split under the incident machinery: 1,000 simulated agents go silent at once while 200
// others keep heartbeating. A real control plane (`chimera web`, SQLite, pinned to core 0) is
// configured with Slack and PagerDuty pointing at the local stand-ins that check their wire formats
// (tests/support/notify-servers.ts, in this process) and unreachable_after_seconds = 1. It must open
// one incident per silent node and hand every notification to its channel through the outbox, while
// the heartbeats of the nodes still up are answered as fast as before. The heartbeats come from the
// open-loop generator of the heartbeat benchmark (scripts/bench/heartbeat-load.ts, its own process
// pinned to core 1), once with nothing else happening (the quiet run) and once across the split.
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import type { NodeHealth } from "../../protocol/agent.ts"
import { freePort } from "../../tests/support/control-plane.ts"
import { startPagerDuty, startSlack } from "../../tests/support/notify-servers.ts"
import { CORES, type EnrolledNode, enrol, f1, log, pinned, stopProc, waitUp } from "./common.ts"
import type { LoadResult } from "./heartbeat-load.ts"
import { runLoad } from "./heartbeats.ts"

const ROOT = join(import.meta.dir, "../..")
const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

export interface IncidentBenchOptions {
  /** Nodes that go silent at once. */
  split: number
  /** Nodes that keep heartbeating, one a second each. */
  quiet: number
  /** Seconds each heartbeat run counts. */
  seconds: number
}

export interface IncidentBenchResult {
  opts: IncidentBenchOptions
  quietRun: LoadResult
  burstRun: LoadResult
  /** Seconds after the split's last heartbeat. */
  firstNotificationS: number
  lastSlackS: number
  lastPagerDutyS: number
  /** When the threshold let the last node count as unreachable: 3 missed 1 s heartbeats, then 1 s. */
  thresholdS: number
  incidents: number
  distinctNodes: number
  slackMessages: number
  pagerDutyTriggers: number
  /** Seconds the split's last heartbeats took to send (the clock starts before them). */
  splitS: number
  /** Messages beyond one per incident step, Slack and PagerDuty together. */
  duplicates: number
}

/** One heartbeat from each node, saying it beats every second (so three missed seconds make it unreachable). */
async function lastHeartbeats(url: string, nodes: EnrolledNode[], parallel = 50) {
  let next = 0
  const worker = async () => {
    for (let i = next++; i < nodes.length; i = next++) {
      const n = nodes[i] as EnrolledNode
      const health: NodeHealth = {
        nodeId: n.id,
        agentVersion: "bench",
        hostname: n.id,
        at: new Date().toISOString(),
        uptimeSeconds: 1,
        load: [0, 0, 0],
        memory: { totalBytes: 1, availableBytes: 1 },
        disk: { path: "/", totalBytes: 1, freeBytes: 1 },
        system: { profile: GEN, current: GEN, booted: GEN },
        desired: GEN,
        phase: "congruent",
        heartbeatIntervalSeconds: 1,
      }
      const res = await fetch(`${url}/api/agent/${n.id}/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${n.credential}`, "content-type": "application/json" },
        body: JSON.stringify(health),
      })
      if (!res.ok) throw new Error(`heartbeat of ${n.id}: ${res.status} ${await res.text()}`)
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
}

export async function incidentBench(opts: IncidentBenchOptions): Promise<IncidentBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), "chimera-bench-inc-"))
  const procs: Subprocess[] = []
  await using slack = startSlack()
  await using pagerduty = startPagerDuty()
  try {
    const port = freePort()
    const url = `http://127.0.0.1:${port}`
    const profileDir = process.env.CHIMERA_BENCH_PROFILE
    const profile = profileDir ? ["--cpu-prof-md", `--cpu-prof-dir=${profileDir}`] : []
    const cp = Bun.spawn(
      // CHIMERA_BENCH_PROFILE=DIR: a CPU profile (markdown) of the control plane, written as it stops.
      pinned(CORES.server, [
        process.execPath,
        ...profile,
        join(ROOT, "control/main.ts"),
        "web",
        "--host",
        "127.0.0.1",
      ]).concat(["--port", String(port)]),
      {
        env: {
          ...process.env,
          CHIMERA_DATA_DIR: join(dir, "data"),
          CHIMERA_CONFIG_FILE: "",
          CHIMERA_TMUX_SOCKET: `chimera-bench-inc-${process.pid}`,
          CHIMERA_LOG_LEVEL: "error",
          CHIMERA_RATE_LIMITS_API: "1000000000",
          CHIMERA_RATE_LIMITS_ENROLL: "1000000000",
          CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl,
          CHIMERA_NOTIFICATIONS_PAGERDUTY_API_KEY: pagerduty.routingKey,
          CHIMERA_NOTIFICATIONS_PAGERDUTY_URL: pagerduty.enqueueUrl,
          CHIMERA_INCIDENTS_UNREACHABLE_AFTER_SECONDS: "1",
        },
        stdin: "ignore",
        stdout: Bun.file(join(dir, "control-plane.log")),
        stderr: Bun.file(join(dir, "control-plane.log")),
      },
    )
    procs.push(cp)
    await waitUp(url, cp, "chimera web")
    const admin = (await readFile(join(dir, "data", "admin.token"), "utf8")).trim()
    log(`  enrolling ${opts.quiet} + ${opts.split} agents through the API…`)
    const quiet = await enrol(url, admin, opts.quiet, (i) => `up-${String(i).padStart(4, "0")}`)
    const split = await enrol(url, admin, opts.split, (i) => `split-${String(i).padStart(4, "0")}`)
    const base = {
      urls: [url],
      nodes: quiet,
      rate: opts.quiet,
      seconds: opts.seconds,
      warmupSeconds: 2,
      serverPids: [cp.pid],
      connections: 16,
      timeoutMs: 10_000,
    }
    log(`  quiet run: ${opts.quiet} agents heartbeating, ${opts.seconds} s…`)
    const quietRun = await runLoad(dir, "quiet", base)

    log(`  split: ${opts.split} agents beat once more and go silent, while ${opts.quiet} keep beating…`)
    const burst = runLoad(dir, "burst", base)
    await Bun.sleep(base.warmupSeconds * 1000)
    const t0 = performance.now()
    const since = () => (performance.now() - t0) / 1000
    await lastHeartbeats(url, split)
    const splitS = since()
    let first = Number.NaN
    let lastSlack = Number.NaN
    let lastPd = Number.NaN
    const triggers = () => pagerduty.events().filter((e) => e.event_action === "trigger").length
    while (since() < 120 && (Number.isNaN(lastSlack) || Number.isNaN(lastPd))) {
      if (Number.isNaN(first) && slack.messages().length + triggers() > 0) first = since()
      if (Number.isNaN(lastSlack) && slack.messages().length >= opts.split) lastSlack = since()
      if (Number.isNaN(lastPd) && triggers() >= opts.split) lastPd = since()
      await Bun.sleep(10)
    }
    const burstRun = await burst
    const res = await fetch(`${url}/api/incidents?status=open&limit=1000`, {
      headers: { authorization: `Bearer ${admin}` },
    })
    const { incidents } = (await res.json()) as { incidents: { nodeId: string; problem: string }[] }
    return {
      opts,
      quietRun,
      burstRun,
      firstNotificationS: first,
      lastSlackS: lastSlack,
      lastPagerDutyS: lastPd,
      thresholdS: 3 + 1,
      incidents: incidents.filter((i) => i.problem === "unreachable").length,
      distinctNodes: new Set(incidents.map((i) => i.nodeId)).size,
      splitS,
      slackMessages: slack.messages().length,
      pagerDutyTriggers: triggers(),
      // Each incident step once: a second message for the same incident and step is a duplicate.
      duplicates:
        slack.messages().length -
        new Set(
          slack
            .messages()
            .map(
              (m) => JSON.stringify(m).match(/\*Incident\*\\n([0-9a-f-]{36})/)?.[1] + String(m.text ?? "").slice(0, 9),
            ),
        ).size +
        triggers() -
        new Set(
          pagerduty
            .events()
            .filter((e) => e.event_action === "trigger")
            .map((e) => e.dedup_key),
        ).size,
    }
  } finally {
    for (const p of procs.reverse()) await stopProc(p)
    await rm(dir, { recursive: true, force: true })
  }
}

export const INCIDENT_HEADING = "### Incidents from a network split"

export function incidentTable(r: IncidentBenchResult): string {
  const q = r.quietRun
  const b = r.burstRun
  const n = (x: number) => x.toLocaleString("en")
  return [
    INCIDENT_HEADING,
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} on ${navigator.hardwareConcurrency} cores, Bun ${Bun.version} (\`bun scripts/bench.ts --only incidents\`). \`chimera web\` (SQLite) pinned to core ${CORES.server}, with Slack and PagerDuty pointed at the local stand-ins that check their wire formats, and \`unreachable_after_seconds = 1\`. ${n(r.opts.split)} simulated agents (enrolled through the API) send one last heartbeat saying they beat every second, then go silent at once; the control plane marks them unreachable after three missed beats and opens an incident for each one second later, so the threshold ends ${r.thresholdS} s after the split, plus up to a second for each sweep. ${n(r.opts.quiet)} other agents keep heartbeating once a second throughout, open-loop from the heartbeat benchmark's generator pinned to core ${CORES.load}: once for ${r.opts.seconds} s with nothing else going on (quiet), and once for ${r.opts.seconds} s from the split on (burst).`,
    "",
    "| open unreachable incidents (distinct nodes) | Slack messages | PagerDuty triggers | duplicates | first notification | last Slack message | last PagerDuty trigger |",
    "|---:|---:|---:|---:|---:|---:|---:|",
    `| ${n(r.incidents)} (${n(r.distinctNodes)}) | ${n(r.slackMessages)} | ${n(r.pagerDutyTriggers)} | ${r.duplicates} | ${f1(r.firstNotificationS)} s | ${f1(r.lastSlackS)} s | ${f1(r.lastPagerDutyS)} s |`,
    "",
    `Times from the split: the clock starts as the silent agents send their last heartbeats (which took ${f1(r.splitS)} s), and stops when a notification is handed to the stand-in channel. The first node is unreachable 3 s after its last heartbeat and an incident 1 s later.`,
    "",
    "| heartbeats of the agents still up | achieved /s | p50 ms | p99 ms | max ms | errors |",
    "|---|---:|---:|---:|---:|---:|",
    `| quiet | ${f1(q.achievedPerSecond)} | ${f1(q.p50Ms)} | ${f1(q.p99Ms)} | ${f1(q.maxMs)} | ${q.errors} |`,
    `| during the split | ${f1(b.achievedPerSecond)} | ${f1(b.p50Ms)} | ${f1(b.p99Ms)} | ${f1(b.maxMs)} | ${b.errors} |`,
    "",
  ].join("\n")
}
