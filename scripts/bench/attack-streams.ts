// The outside attack on the control plane, replayed on loopback: how /api/health answers (median, p99,
// worst, failures) and how much memory the control plane holds while a viewer opens 2,000 event
// streams that read only their headers and a node floods large heal.failed reports, and while a node
// sends 40 MB bodies of nested `[` and bodies over the size limit. The reference is a quiet phase of
// the same control plane in the same run. `chimera web` runs as a child process pinned to core 0 with
// its own data dir: with the configured defaults, with the stream caps raised out of reach, and with
// the report quota raised out of reach, so each defence is seen alone. Every phase is time-boxed;
// the whole run takes about 90 s.
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { connect, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "../../tests/support/control-plane.ts"
import { CORES, enrol, f1, log, median, pinned, stopProc, waitUp } from "./common.ts"

const ROOT = join(import.meta.dir, "../..")
const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

type Config = "defaults" | "stream caps raised" | "report quota raised"

export interface AttackRow {
  config: Config
  phase: string
  streamsOpen: number
  streamsRefused: number
  accepted: number
  refused: number
  healthMedianMs: number
  healthP99Ms: number
  healthMaxMs: number
  healthFailures: number
  peakRssMb: number
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)] ?? Number.NaN

/** Asks /api/health back to back (each waits for the last), until `stop` resolves. */
async function healthLoop(url: string, stop: Promise<void>) {
  const ms: number[] = []
  let failures = 0
  let done = false
  void stop.then(() => {
    done = true
  })
  while (!done) {
    const t0 = performance.now()
    const ok = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(30_000) }).then(
      (r) => r.status === 200,
      () => false,
    )
    ms.push(performance.now() - t0)
    if (!ok) failures++
    await Bun.sleep(20)
  }
  return { ms, failures }
}

/** Past this the control plane is killed: the machine is shared, and the number already says enough. */
const RSS_CEILING_MB = 4096

/** The control plane's peak RSS (MiB) while `stop` is pending. */
async function rssPeak(pid: number, stop: Promise<void>) {
  let peak = 0
  let done = false
  void stop.then(() => {
    done = true
  })
  while (!done) {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "")
    peak = Math.max(peak, Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024)
    if (peak > RSS_CEILING_MB) {
      log(`attack: the control plane passed ${RSS_CEILING_MB} MiB; killed`)
      process.kill(pid, "SIGKILL")
      break
    }
    await Bun.sleep(100)
  }
  return peak
}

/** Opens `n` event streams that read the status line and then nothing; counts 200s and 429s. */
async function idleStreams(url: string, token: string, n: number) {
  const { port } = new URL(url)
  const sockets: Socket[] = []
  let open = 0
  let refused = 0
  await Promise.all(
    Array.from({ length: n }, async () => {
      const socket = connect(Number(port), "127.0.0.1")
      sockets.push(socket)
      socket.on("error", () => {})
      const first = await new Promise<string>((resolve) => {
        socket.once("data", (d) => resolve(String(d).slice(0, 12)))
        socket.once("close", () => resolve(""))
        socket.write(`GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`)
      })
      if (first.includes(" 200")) open++
      else if (first.includes(" 429")) refused++
      socket.pause()
    }),
  )
  const close = () => {
    for (const s of sockets) s.destroy()
  }
  return { open, refused, close }
}

const healFailed = (seq: number) => ({
  seq,
  at: new Date().toISOString(),
  type: "heal.failed",
  data: { desired: GEN, attempt: 1, durationMs: 5, error: "switch failed", output: "x".repeat(60_000), retryInMs: 1 },
})

/** Posts bodies made by `body(i)` back to back until `stop`; counts 2xx and the rest. */
async function sendLoop(url: string, credential: string, stop: Promise<void>, body: (seq: number) => string) {
  let accepted = 0
  let refused = 0
  let seq = 1
  let done = false
  void stop.then(() => {
    done = true
  })
  while (!done) {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${credential}`, "content-type": "application/json" },
      body: body(seq),
      signal: AbortSignal.timeout(20_000),
    }).catch((error: Error) => {
      log(`attack: a request failed: ${error.message}`)
      return null
    })
    await res?.arrayBuffer().catch(() => null)
    if (res?.ok) {
      accepted++
      seq += 50
    } else refused++
  }
  return { accepted, refused }
}

async function controlPlane(env: Record<string, string>) {
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-bench-attack-"))
  const port = freePort()
  const url = `http://127.0.0.1:${port}`
  const proc = Bun.spawn(
    pinned(CORES.server, [process.execPath, join(ROOT, "control/main.ts"), "web", "--port", String(port)]),
    {
      env: {
        ...process.env,
        CHIMERA_DATA_DIR: dataDir,
        CHIMERA_CONFIG_FILE: "",
        CHIMERA_RATE_LIMITS_API: "1000000000",
        CHIMERA_RATE_LIMITS_AGENT: "1000000000",
        ...env,
      },
      stdout: "ignore",
      stderr: "ignore",
    },
  )
  await waitUp(url, proc, "chimera web")
  const admin = (await readFile(join(dataDir, "admin.token"), "utf8")).trim()
  const call = (path: string, token: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    })
  await call("/api/users", admin, { username: "viewer", password: "a long bench password", role: "viewer" })
  const login = await call("/api/auth/login", "none", { username: "viewer", password: "a long bench password" })
  const viewer = ((await login.json()) as { token: string }).token
  const [node] = await enrol(url, admin, 1, () => "chatty", 1)
  return {
    url,
    proc,
    viewer,
    credential: node?.credential ?? "",
    async stop() {
      await stopProc(proc)
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

export async function attackBench(opts: { seconds: number } = { seconds: 12 }): Promise<AttackRow[]> {
  const rows: AttackRow[] = []
  const streamsRaised = { CHIMERA_LIMITS_EVENT_STREAMS_PER_USER: "1000000", CHIMERA_LIMITS_EVENT_STREAMS: "1000000" }
  const quotaRaised = { CHIMERA_LIMITS_NODE_REPORT_BYTES: "1000000000000", CHIMERA_LIMITS_NODE_REPORTS: "1000000000" }
  const nested = `{"reports":${"[".repeat(40 * 1024 * 1024)}`
  const oversized = `{"reports":[${" ".repeat(60 * 1024 * 1024)}]}`
  const configs: [Config, Record<string, string>][] = [
    ["defaults", {}],
    ["stream caps raised", streamsRaised],
    ["report quota raised", quotaRaised],
  ]
  for (const [config, env] of configs) {
    const cp = await controlPlane(env)
    const reports = `${cp.url}/api/agent/chatty/reports`
    const phase = async (
      name: string,
      attack: (stop: Promise<void>) => Promise<{ accepted: number; refused: number; open?: number; shut?: number }>,
    ) => {
      log(`attack: ${config}: ${name}`)
      let end = () => {}
      const stop = new Promise<void>((resolve) => {
        end = resolve
      })
      const timer = setTimeout(end, opts.seconds * 1000)
      const [health, peak, result] = await Promise.all([
        healthLoop(cp.url, stop),
        rssPeak(cp.proc.pid, stop),
        attack(stop),
      ])
      clearTimeout(timer)
      rows.push({
        config,
        phase: name,
        streamsOpen: result.open ?? 0,
        streamsRefused: result.shut ?? 0,
        accepted: result.accepted,
        refused: result.refused,
        healthMedianMs: median(health.ms),
        healthP99Ms: p99(health.ms),
        healthMaxMs: Math.max(...health.ms),
        healthFailures: health.failures,
        peakRssMb: peak,
      })
    }
    try {
      const flood = (stop: Promise<void>) =>
        sendLoop(reports, cp.credential, stop, (seq) =>
          JSON.stringify({ reports: Array.from({ length: 50 }, (_, i) => healFailed(seq + i)) }),
        )
      if (config === "defaults") await phase("quiet", async () => ({ accepted: 0, refused: 0 }))
      if (config !== "report quota raised")
        await phase("2,000 idle streams + report flood", async (stop) => {
          const streams = await idleStreams(cp.url, cp.viewer, 2000)
          const sent = await flood(stop)
          streams.close()
          return { ...sent, open: streams.open, shut: streams.refused }
        })
      else await phase("report flood", flood)
      if (config !== "stream caps raised")
        await phase("40 MB nested bodies, 60 MB bodies", async (stop) => {
          let i = 0
          return sendLoop(reports, cp.credential, stop, () => (i++ % 2 === 0 ? nested : oversized))
        })
    } finally {
      await cp.stop()
    }
  }
  return rows
}

export const ATTACK_HEADING = "### Under attack: idle event streams, report floods, nested bodies"

export function attackTable(rows: AttackRow[]): string {
  const lines = [
    ATTACK_HEADING,
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} on ${navigator.hardwareConcurrency} cores, Bun ${Bun.version} (\`bun scripts/bench.ts --only attack\`). \`chimera web\` runs as a child process pinned to core ${CORES.server}, SQLite; the attacker and the health prober run in the bench process. Each phase lasts the same time; /api/health is asked back to back (20 ms apart) throughout and timed from the prober. *Streams*: a viewer's \`GET /api/events/stream\` connections that read the status line and nothing more (open / refused with 429). *Flood*: one node posting batches of 50 \`heal.failed\` reports of 60 KB each, back to back, ignoring Retry-After (batches stored / refused). *Bodies*: the same node alternating 40 MB of nested \`[\` and 60 MB bodies (none is ever stored). RSS is the control plane's peak during the phase. "Stream caps raised" lets all 2,000 streams in (the report quota stays), so the bounded stream buffers, the shared credential checks and the store-read turns hold the line; "report quota raised" lets every batch in, which shows what the quota saves and what the depth scan does alone.`,
    "",
    "| config | phase | streams open / refused | requests stored / refused | health median | health p99 | health worst | health failures | peak RSS |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for (const r of rows)
    lines.push(
      `| ${r.config} | ${r.phase} | ${r.streamsOpen} / ${r.streamsRefused} | ${r.accepted} / ${r.refused} | ${f1(r.healthMedianMs)} ms | ${f1(r.healthP99Ms)} ms | ${f1(r.healthMaxMs)} ms | ${r.healthFailures} | ${f1(r.peakRssMb)} MiB |`,
    )
  return lines.join("\n")
}
