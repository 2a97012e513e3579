// Two control-plane replicas on one real PostgreSQL, measured as an operator would meet them.
// (1) Cross-replica delivery: a simulated agent holds the real long poll (GET …/commands?wait=25) on
//     replica B while a desired closure is set through replica A (PUT /api/nodes/:id/desired); timed
//     from the PUT's start to the poll's answer carrying the activate command. The baseline, same run:
//     the closure set through B itself. Each try's command is acked before the next.
// (2) Kill a replica: 1,000 simulated agents, half preferring A, half B, heartbeat every 2 s and send a
//     numbered report every 4 s, spooling each until acknowledged; on a connection failure or a 5xx an
//     agent moves to the other replica (as the real agent's failover does) and replays its spool there.
//     A is SIGKILLed mid-run. Then: reports acknowledged but not stored (lost), stored twice (doubled),
//     how long A's agents took to be answered by B (time to recover), and nodes marked unreachable.
// Replica A runs on core 0, B on core 1; the simulated agents run in this process, PostgreSQL unpinned.
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SQL, type Subprocess } from "bun"
import { heartbeatBody } from "../../tests/support/auth.ts"
import { CORES, type EnrolledNode, enrol, f1, log, median, startWeb, stopProc } from "./common.ts"
import { loadAverage } from "./heartbeats.ts"

const ROOT = join(import.meta.dir, "../..")
const CLOSURE = (i: number) =>
  `/nix/store/${"0123456789abcdfghijklmnpqrsvwxyz".repeat(2).slice(i % 32, (i % 32) + 32)}-bench-system-${i}`

interface Replica {
  url: string
  proc: Subprocess
}

async function startReplica(dir: string, name: string, databaseUrl: string, core: string): Promise<Replica> {
  const { url, proc } = await startWeb({
    root: ROOT,
    core,
    dataDir: join(dir, name),
    logFile: join(dir, `${name}.log`),
    name: `rep-${name}`,
    env: { CHIMERA_DB: databaseUrl },
  })
  return { url, proc }
}

const agentHeaders = (credential: string) => ({
  authorization: `Bearer ${credential}`,
  "content-type": "application/json",
})

/** A node without a desired closure yet, beating every 2 s as the simulated agents say they do. */
const heartbeat = (id: string) => ({
  ...heartbeatBody(id),
  agentVersion: "bench",
  desired: null,
  phase: "no-desired" as const,
  heartbeatIntervalSeconds: 2,
})

export interface DeliveryResult {
  crossMs: number[]
  sameMs: number[]
}

/** One try: poll `pollOn`, set the closure through `setOn`, time until the poll answers with it. */
async function deliveryTry(pollOn: string, setOn: string, admin: string, node: EnrolledNode, closure: string) {
  const poll = fetch(`${pollOn}/api/agent/${node.id}/commands?wait=25`, { headers: agentHeaders(node.credential) })
  // The poll must be held before the closure is set: give the request time to reach its wait.
  await Bun.sleep(300)
  const t0 = performance.now()
  const put = await fetch(`${setOn}/api/nodes/${node.id}/desired`, {
    method: "PUT",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ closure }),
  })
  if (put.status !== 200) throw new Error(`PUT desired: ${put.status} ${await put.text()}`)
  const res = await poll
  const ms = performance.now() - t0
  const body = (await res.json()) as { commands: { id: string; closure?: string }[] }
  const command = body.commands.find((c) => c.closure === closure)
  if (!command) throw new Error(`the poll on ${pollOn} answered without the closure: ${JSON.stringify(body)}`)
  const ack = await fetch(`${pollOn}/api/agent/${node.id}/commands/${command.id}/ack`, {
    method: "POST",
    headers: agentHeaders(node.credential),
    body: JSON.stringify({ success: true, output: "" }),
  })
  if (ack.status !== 200) throw new Error(`ack: ${ack.status} ${await ack.text()}`)
  return ms
}

export interface KillResult {
  agents: number
  generated: number
  acknowledged: number
  stored: number
  lost: number
  doubled: number
  /** From each failed-over agent's first failed request after the kill to its first answer from the other replica, ms. */
  recoverMs: number[]
  /** From the SIGKILL until the last failed-over agent was answered by the other replica, ms. */
  lastRecoveredMs: number
  /** Reports generated before the SIGKILL: how many were not yet acknowledged then, and from the kill
   * until the last of them was (ms). */
  pendingAtKill: number
  pendingAckedMs: number
  unreachable: number
  failedRequests: number
}

interface SimAgent {
  node: EnrolledNode
  /** Index into the replicas list it talks to now. */
  on: number
  nextSeq: number
  acked: number
  failoverAt: number | null
  recoveredAt: number | null
  /** The highest seq generated before the kill, and when it was acknowledged. */
  seqAtKill: number
  seqAtKillAckedAt: number | null
}

async function killRun(replicas: Replica[], nodes: EnrolledNode[], db: SQL, runSeconds: number): Promise<KillResult> {
  const agents: SimAgent[] = nodes.map((node, k) => ({
    node,
    on: k % 2,
    nextSeq: 1,
    acked: 0,
    failoverAt: null,
    recoveredAt: null,
    seqAtKill: 0,
    seqAtKillAckedAt: null,
  }))
  let killedAt = 0
  let generating = true
  let failedRequests = 0
  const startedAt = new Date().toISOString()

  /** One request with the agent's failover: a connection failure or a 5xx moves it to the other
   * replica, where it is sent again after a short backoff (three tries in all). */
  const send = async (a: SimAgent, path: string, body: unknown): Promise<Response | null> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const url = replicas[a.on]?.url
      try {
        const res = await fetch(`${url}${path}`, {
          method: "POST",
          headers: agentHeaders(a.node.credential),
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(5000),
        })
        if (res.status >= 500) throw new Error(`${res.status}`)
        if (a.failoverAt !== null && a.recoveredAt === null && res.status === 200) a.recoveredAt = performance.now()
        return res
      } catch {
        failedRequests++
        if (killedAt > 0 && a.failoverAt === null) a.failoverAt = performance.now()
        a.on = (a.on + 1) % replicas.length
        await Bun.sleep(100 + Math.random() * 100)
      }
    }
    return null
  }
  const flush = async (a: SimAgent) => {
    if (a.acked >= a.nextSeq - 1) return
    const reports = []
    for (let seq = a.acked + 1; seq < a.nextSeq && reports.length < 50; seq++)
      reports.push({
        seq,
        at: new Date().toISOString(),
        type: "heal.started",
        data: { desired: CLOSURE(seq), attempt: 1 },
      })
    const res = await send(a, `/api/agent/${a.node.id}/reports`, { reports })
    if (res?.status === 200) a.acked = Math.max(a.acked, ((await res.json()) as { ackedSeq: number }).ackedSeq)
    if (killedAt > 0 && a.seqAtKillAckedAt === null && a.acked >= a.seqAtKill) a.seqAtKillAckedAt = performance.now()
  }
  const loop = async (a: SimAgent) => {
    await Bun.sleep(Math.random() * 2000)
    let tick = 0
    while (generating) {
      await send(a, `/api/agent/${a.node.id}/heartbeat`, heartbeat(a.node.id))
      if (tick++ % 2 === 0) a.nextSeq++
      await flush(a)
      await Bun.sleep(1800 + Math.random() * 400)
    }
    // Generation over: replay what is left until acknowledged (bounded).
    for (let i = 0; i < 50 && a.acked < a.nextSeq - 1; i++) await flush(a)
  }
  const loops = agents.map(loop)
  await Bun.sleep((runSeconds / 2) * 1000)
  const killed = replicas[0] as Replica
  killed.proc.kill("SIGKILL")
  killedAt = performance.now()
  let pendingAtKill = 0
  for (const a of agents) {
    a.seqAtKill = a.nextSeq - 1
    pendingAtKill += a.seqAtKill - a.acked
    if (a.acked >= a.seqAtKill) a.seqAtKillAckedAt = killedAt
  }
  log(`  replica A killed; ${runSeconds / 2} s more…`)
  await Bun.sleep((runSeconds / 2) * 1000)
  generating = false
  const stoppedAt = new Date().toISOString()
  await Promise.all(loops)
  const pendingAckedMs = Math.max(...agents.map((a) => (a.seqAtKillAckedAt ?? Number.POSITIVE_INFINITY) - killedAt))

  const rows = (await db`
    SELECT node_id, agent_seq, count(*)::int AS n FROM events
    WHERE type = 'heal.started' AND agent_seq IS NOT NULL GROUP BY node_id, agent_seq`) as {
    node_id: string
    agent_seq: string | number
    n: number
  }[]
  const stored = new Map<string, Set<number>>()
  let doubled = 0
  for (const r of rows) {
    let set = stored.get(r.node_id)
    if (!set) {
      set = new Set()
      stored.set(r.node_id, set)
    }
    set.add(Number(r.agent_seq))
    if (r.n > 1) doubled += r.n - 1
  }
  let lost = 0
  for (const a of agents) for (let seq = 1; seq <= a.acked; seq++) if (!stored.get(a.node.id)?.has(seq)) lost++
  const unreachable = (await db`
    SELECT count(*)::int AS n FROM events WHERE type = 'node.unreachable' AND received_at >= ${startedAt} AND received_at <= ${stoppedAt}`) as {
    n: number
  }[]
  const recoverMs = agents
    .filter((a) => a.failoverAt !== null)
    .map((a) => (a.recoveredAt ?? Number.POSITIVE_INFINITY) - (a.failoverAt as number))
  const lastRecoveredMs = Math.max(
    ...agents.filter((a) => a.failoverAt !== null).map((a) => (a.recoveredAt ?? Number.POSITIVE_INFINITY) - killedAt),
  )
  return {
    lastRecoveredMs,
    agents: agents.length,
    generated: agents.reduce((s, a) => s + a.nextSeq - 1, 0),
    acknowledged: agents.reduce((s, a) => s + a.acked, 0),
    stored: rows.reduce((s, r) => s + r.n, 0),
    lost,
    doubled,
    recoverMs,
    pendingAtKill,
    pendingAckedMs,
    unreachable: unreachable[0]?.n ?? 0,
    failedRequests,
  }
}

export interface ReplicasResults {
  delivery: DeliveryResult
  kill: KillResult
  loadAverage: [number, number]
}

export async function replicasBench(opts: {
  tries: number
  agents: number
  runSeconds: number
}): Promise<ReplicasResults> {
  const { startPostgres } = await import("../../tests/support/postgres.ts")
  const loadBefore = await loadAverage()
  await using pg = await startPostgres()
  const dir = await mkdtemp(join(tmpdir(), "chimera-bench-replicas-"))
  const procs: Subprocess[] = []
  try {
    // (1) delivery, on a database of its own.
    const url1 = await pg.database("bench_delivery")
    const a = await startReplica(dir, "a1", url1, CORES.server)
    procs.push(a.proc)
    const b = await startReplica(dir, "b1", url1, CORES.load)
    procs.push(b.proc)
    const admin = (await readFile(join(dir, "a1", "admin.token"), "utf8")).trim()
    const [node] = await enrol(a.url, admin, 1, () => "delivery-1", 1)
    if (!node) throw new Error("enrolment failed")
    const delivery: DeliveryResult = { crossMs: [], sameMs: [] }
    for (let i = 0; i < opts.tries; i++) {
      delivery.crossMs.push(await deliveryTry(b.url, a.url, admin, node, CLOSURE(2 * i)))
      delivery.sameMs.push(await deliveryTry(b.url, b.url, admin, node, CLOSURE(2 * i + 1)))
    }
    log(`  delivery: A→B median ${f1(median(delivery.crossMs))} ms, B→B ${f1(median(delivery.sameMs))} ms`)
    for (const p of procs.splice(0)) await stopProc(p)

    // (2) kill a replica, on a fresh database.
    const url2 = await pg.database("bench_kill")
    const a2 = await startReplica(dir, "a2", url2, CORES.server)
    procs.push(a2.proc)
    const b2 = await startReplica(dir, "b2", url2, CORES.load)
    procs.push(b2.proc)
    const admin2 = (await readFile(join(dir, "a2", "admin.token"), "utf8")).trim()
    log(`  enrolling ${opts.agents} agents…`)
    const nodes = await enrol(b2.url, admin2, opts.agents, (i) => `kill-${String(i).padStart(4, "0")}`)
    await using db = new SQL(url2)
    log(`  ${opts.agents} agents for ${opts.runSeconds} s, replica A killed half way…`)
    const kill = await killRun([a2, b2], nodes, db, opts.runSeconds)
    return { delivery, kill, loadAverage: [loadBefore, await loadAverage()] }
  } finally {
    for (const p of procs.reverse()) await stopProc(p)
    await rm(dir, { recursive: true, force: true })
  }
}

const n0 = (x: number) => Math.round(x).toLocaleString("en")

export function replicasTable(r: ReplicasResults): string {
  const d = r.delivery
  const k = r.kill
  const max = (xs: number[]) => Math.max(...xs)
  const finite = k.recoverMs.filter(Number.isFinite)
  return [
    "### Replicas on PostgreSQL: cross-replica delivery and a replica killed",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} on ${navigator.hardwareConcurrency} cores, Bun ${Bun.version} (\`bun scripts/bench.ts --only replicas\`), load average ${r.loadAverage[0].toFixed(1)} before and ${r.loadAverage[1].toFixed(1)} after (other engineers' work shared the cores). Two \`chimera web\` replicas on one PostgreSQL (Debian's, started by the bench on loopback), A pinned to core ${CORES.server}, B to core ${CORES.load}; the simulated agents run in the bench process.`,
    "",
    `**Delivery.** A simulated agent holds the real long poll (\`GET /api/agent/:id/commands?wait=25\`) on replica B; a desired closure is set with \`PUT /api/nodes/:id/desired\`, through A or (baseline) through B itself; timed from the PUT's start to the poll's answer carrying the activate command, which is then acked. ${d.crossMs.length} tries each, alternating.`,
    "",
    "| closure set through | tries | median ms | max ms |",
    "|---|---:|---:|---:|",
    `| replica A (agent polls B) | ${d.crossMs.length} | ${f1(median(d.crossMs))} | ${f1(max(d.crossMs))} |`,
    `| replica B (same replica, baseline) | ${d.sameMs.length} | ${f1(median(d.sameMs))} | ${f1(max(d.sameMs))} |`,
    "",
    `**Kill a replica.** ${n0(k.agents)} simulated agents, half preferring each replica, heartbeat every 2 s and send a numbered report (\`heal.started\`) every 4 s, each spooled until acknowledged; on a connection failure or a 5xx an agent moves to the other replica and replays its spool there. Replica A is SIGKILLed half way through the run. Lost = acknowledged but not in the database; doubled = stored more than once.`,
    "",
    "| agents | reports generated | acknowledged | stored | lost | doubled | failed-over agents answered by B: median / max after their first failure | reports unacknowledged at the kill: all acknowledged after | nodes marked unreachable |",
    "|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    `| ${n0(k.agents)} | ${n0(k.generated)} | ${n0(k.acknowledged)} | ${n0(k.stored)} | ${k.lost} | ${k.doubled} | ${f1(median(k.recoverMs))} ms / ${finite.length === k.recoverMs.length ? `${f1(max(finite))} ms` : `${k.recoverMs.length - finite.length} never`} (${k.recoverMs.length} agents); the last ${Number.isFinite(k.lastRecoveredMs) ? `${n0(k.lastRecoveredMs)} ms` : "never"} after the kill | ${n0(k.pendingAtKill)}: ${Number.isFinite(k.pendingAckedMs) ? `${n0(k.pendingAckedMs)} ms` : "not all"} | ${k.unreachable} |`,
    "",
    `${n0(k.failedRequests)} requests failed in all (each one moved its agent to the other replica).`,
  ].join("\n")
}
