// The control plane under an outside attack on its open doors, against a quiet run in the same run:
// (a) an unauthenticated enrolment flood (made-up join tokens, 15 KiB bodies, 64 connections from 50
// loopback addresses) and (b) a distributed login flood (100 addresses, three wrong passwords in flight
// each, every one for another made-up username, so no username's lockout spares the check queue).
// Meanwhile a prober asks GET /api/health every 100 ms and a real user logs in every 500 ms, each time
// from a loopback address no flood uses. Measured per phase: health and login latency, logins that
// were not 200, the control plane's peak RSS, audit bytes written (rows of audit_log and
// audit_outcomes, read from its SQLite file) and the flood's answers.
//
// `chimera web` runs as a child process pinned to core 0 with its configured limits (the defaults);
// the floods and probes run here on core 1. `--control-root DIR` runs another checkout's control plane
// (an older commit, for a before/after) with the same load. Loopback only, about 70 s.
import { Database } from "bun:sqlite"
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "../../tests/support/control-plane.ts"
import { claimAddresses } from "../../tests/support/loopback.ts"
import { requestFrom } from "../../tests/support/source-address.ts"
import { CORES, f1, log, pinned, stopProc, waitUp } from "./common.ts"

export const ATTACK_AUTH_HEADING = "### The open doors under attack: enrolment and login floods"
const PHASE_MS = 15_000
const PASSWORD = "the real user's long password"

export interface PhaseResult {
  phase: string
  healthP50: number
  healthP99: number
  loginP50: number
  loginP99: number
  loginsNot200: number
  logins: number
  rssMiB: number
  auditBytes: number
  flood: Record<string, number>
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))] ?? Number.NaN
}

function auditBytes(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true })
  try {
    const size = (table: string, cols: string) =>
      (db.query(`SELECT COALESCE(sum(${cols}), 0) AS b FROM ${table}`).get() as { b: number }).b
    const rows = size(
      "audit_log",
      "length(at) + length(request_id) + length(actor) + COALESCE(length(role), 0) + COALESCE(length(source), 0) + length(method) + length(path) + length(action) + COALESCE(length(node_id), 0) + COALESCE(length(command), 0) + COALESCE(length(detail), 0) + 16",
    )
    const hasOutcomes = db.query("SELECT 1 FROM sqlite_master WHERE name = 'audit_outcomes'").get() !== null
    return (
      rows +
      (hasOutcomes ? size("audit_outcomes", "length(at) + length(result) + COALESCE(length(detail), 0) + 16") : 0)
    )
  } finally {
    db.close()
  }
}

export async function attackAuthBench(opts: { controlRoot?: string } = {}): Promise<PhaseResult[]> {
  const root = opts.controlRoot ?? join(import.meta.dir, "../..")
  const dir = await mkdtemp(join(tmpdir(), "chimera-bench-attack-"))
  const claims = claimAddresses(160)
  const addr = (i: number) => claims[i % claims.length]?.address ?? "127.0.0.1"
  const port = freePort()
  const url = `http://127.0.0.1:${port}`
  const cpLog = Bun.file(join(dir, "control-plane.log"))
  const cp = Bun.spawn(
    pinned(CORES.server, [process.execPath, join(root, "control/main.ts"), "web", "--port", String(port)]),
    {
      env: {
        ...process.env,
        CHIMERA_DATA_DIR: join(dir, "data"),
        CHIMERA_CONFIG_FILE: "",
        CHIMERA_TMUX_SOCKET: `chimera-bench-attack-${process.pid}`,
        CHIMERA_LOG_LEVEL: "critical",
      },
      stdin: "ignore",
      stdout: cpLog,
      stderr: cpLog,
    },
  )
  const results: PhaseResult[] = []
  try {
    await waitUp(url, cp, "chimera web")
    const admin = (await readFile(join(dir, "data", "admin.token"), "utf8")).trim()
    const dbPath = join(dir, "data", "chimera.db")
    const added = await fetch(`${url}/api/users`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ username: "realuser", password: PASSWORD, role: "operator" }),
    })
    if (added.status !== 201) throw new Error(`adding the real user: ${added.status} ${await added.text()}`)

    // Probe addresses 150-159 are never used by a flood; each login comes from the next one.
    let probeAddress = 0
    const phase = async (name: string, flood: ((running: () => boolean) => Promise<void>)[]) => {
      log(`  ${name}…`)
      const health: number[] = []
      const logins: number[] = []
      let not200 = 0
      let rss = 0
      const before = existsSync(dbPath) ? auditBytes(dbPath) : 0
      const end = performance.now() + PHASE_MS
      const running = () => performance.now() < end
      const floods = flood.map((f) => f(running))
      const probeHealth = async () => {
        while (running()) {
          const t = performance.now()
          await fetch(`${url}/api/health`).catch(() => null)
          health.push(performance.now() - t)
          await Bun.sleep(100)
        }
      }
      const probeLogin = async () => {
        while (running()) {
          const t = performance.now()
          const res = await requestFrom(addr(150 + (probeAddress++ % 10)), url, "/api/auth/login", {
            body: { username: "realuser", password: PASSWORD },
          }).catch(() => null)
          logins.push(performance.now() - t)
          if (res?.status !== 200) not200++
          await Bun.sleep(500)
        }
      }
      const sampleRss = async () => {
        while (running()) {
          const status = await Bun.file(`/proc/${cp.pid}/status`).text()
          rss = Math.max(rss, Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024)
          await Bun.sleep(250)
        }
      }
      await Promise.all([probeHealth(), probeLogin(), sampleRss(), ...floods])
      const result: PhaseResult = {
        phase: name,
        healthP50: pct(health, 0.5),
        healthP99: pct(health, 0.99),
        loginP50: pct(logins, 0.5),
        loginP99: pct(logins, 0.99),
        loginsNot200: not200,
        logins: logins.length,
        rssMiB: rss,
        auditBytes: auditBytes(dbPath) - before,
        flood: counted,
      }
      counted = {}
      results.push(result)
      log(`    ${JSON.stringify(result)}`)
    }
    let counted: Record<string, number> = {}
    const count = (status: number | undefined) => {
      const key = String(status ?? "error")
      counted[key] = (counted[key] ?? 0) + 1
    }

    await phase("quiet", [])

    const pad = "x".repeat(15 * 1024)
    let n = 0
    const enrolFlooder = (source: string) => async (running: () => boolean) => {
      while (running()) {
        const res = await requestFrom(source, url, "/api/agent/enroll", {
          token: `chm_join_madeup${n++}`,
          body: { nodeId: `n${n}`, hostname: "h", agentVersion: "1", pad },
        }).catch(() => null)
        count(res?.status)
      }
    }
    await phase(
      "(a) enrolment flood",
      Array.from({ length: 64 }, (_, i) => enrolFlooder(addr(i % 50))),
    )

    const loginFlooder = (source: string) => async (running: () => boolean) => {
      while (running()) {
        const res = await requestFrom(source, url, "/api/auth/login", {
          body: { username: `spray${n++}`, password: "not the password" },
        }).catch(() => null)
        count(res?.status)
      }
    }
    await phase(
      "(b) distributed login flood",
      Array.from({ length: 300 }, (_, i) => loginFlooder(addr(i % 100))),
    )
    return results
  } finally {
    await stopProc(cp)
    for (const c of claims) c.release()
    await rm(dir, { recursive: true, force: true })
  }
}

export function attackAuthTable(runs: { label: string; results: PhaseResult[] }[]): string {
  const lines = [
    ATTACK_AUTH_HEADING,
    "",
    "| control plane | phase | health p50 / p99 (ms) | real login p50 / p99 (ms) | real logins not 200 | peak RSS (MiB) | audit bytes written | flood answers |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for (const { label, results } of runs)
    for (const r of results)
      lines.push(
        `| ${label} | ${r.phase} | ${f1(r.healthP50)} / ${f1(r.healthP99)} | ${f1(r.loginP50)} / ${f1(r.loginP99)} | ${r.loginsNot200} of ${r.logins} | ${f1(r.rssMiB)} | ${r.auditBytes.toLocaleString("en")} | ${
          Object.entries(r.flood)
            .map(([s, c]) => `${c}× ${s}`)
            .join(", ") || "none"
        } |`,
      )
  return lines.join("\n")
}
