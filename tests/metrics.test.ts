// GET /metrics with real parts: a real Prometheus (Debian's) scrapes the control plane every second
// with a scrape-only token, and a PromQL query through its HTTP API finds the fleet's nodes by status;
// promtool accepts the exposition; a wrong or expired token gets a 401 with a JSON error.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { deploymentStore } from "../control/adapters/store/deployment-store.ts"
import { openDatabase } from "../control/adapters/store/sql-store.ts"
import type { StorePath } from "../protocol/ids.ts"
import { addUser, call, enrollNode, heartbeatBody, login } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { freePort, startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { requireTool, run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const GEN = heartbeatBody("x").system.current
const OTHER = "/nix/store/0c5k6m3hq9x1w2b4v7n8p0r1s2d3f4g5-chimera-test-system-2"

let cp: TestControlPlane
let dir: string
const clock = manualClock()

async function createToken(role: string, ttlDays?: number): Promise<string> {
  const res = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: `scrape-${role}`, role, ttlDays })
  expect(res.status).toBe(201)
  return ((await res.json()) as { token: string }).token
}

async function heartbeat(nodeId: string, credential: string) {
  const res = await call(cp, credential, "POST", `/api/agent/${nodeId}/heartbeat`, heartbeatBody(nodeId))
  expect(res.status).toBe(200)
}

beforeAll(async () => {
  cp = await startInProcess({ clock })
  dir = await mkdtemp(join(tmpdir(), "chimera-prom-"))
  // Two nodes on their desired closure, one drifted from it, one that never said which it wants.
  for (const [id, desired] of [
    ["web-1", GEN],
    ["web-2", GEN],
    ["db-1", OTHER],
    ["new-1", null],
  ] as const) {
    const credential = await enrollNode(cp, id)
    await heartbeat(id, credential)
    if (desired !== null)
      expect((await call(cp, cp.adminToken, "PUT", `/api/nodes/${id}/desired`, { closure: desired })).status).toBe(200)
  }
  // And one whose credential was revoked.
  await enrollNode(cp, "old-1")
  expect((await call(cp, cp.adminToken, "POST", "/api/nodes/old-1/revoke")).status).toBe(200)
})

afterAll(async () => {
  await cp?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe("GET /metrics", () => {
  test("a real Prometheus scrapes it with a scrape-only token and PromQL counts the nodes by status", async () => {
    const prometheus = requireTool("prometheus")
    const token = await createToken("metrics")
    // The scrape-only token reads nothing else.
    expect((await call(cp, token, "GET", "/api/nodes")).status).toBe(403)
    await writeFile(join(dir, "token"), token, { mode: 0o600 })
    const target = new URL(cp.url).host
    await writeFile(
      join(dir, "prometheus.yml"),
      [
        "global: { scrape_interval: 1s, evaluation_interval: 1s }",
        "scrape_configs:",
        "  - job_name: chimera",
        "    metrics_path: /metrics",
        `    authorization: { type: Bearer, credentials_file: ${join(dir, "token")} }`,
        `    static_configs: [{ targets: ["${target}"] }]`,
        "",
      ].join("\n"),
    )
    const port = freePort()
    const proc: Subprocess = Bun.spawn(
      [
        prometheus,
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    )
    try {
      type Vector = { data?: { result: { metric: Record<string, string>; value: [number, string] }[] } }
      const query = async (q: string): Promise<Vector> =>
        fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`).then(
          (r) => (r.ok ? (r.json() as Promise<Vector>) : {}),
          () => ({}),
        )
      const byStatus = await waitFor(
        "Prometheus to have scraped chimera_nodes",
        async () =>
          Object.fromEntries(
            ((await query("chimera_nodes")).data?.result ?? []).map((r) => [r.metric.status, Number(r.value[1])]),
          ),
        (counts) => counts.healthy === 2,
        60_000,
      )
      expect(byStatus).toEqual({
        healthy: 2,
        drifted: 1,
        unknown: 1,
        healing: 0,
        "heal-failed": 0,
        "missing-closure": 0,
        unreachable: 0,
        revoked: 1,
      })
      const up = await query('up{job="chimera"}')
      expect(up.data?.result[0]?.value[1]).toBe("1")
      // A scrape is counted once answered, so the next scrape shows it, under its route pattern.
      await waitFor(
        "a later scrape to show the scrapes before it",
        () => query('chimera_http_requests_total{route="/metrics",status="200"}'),
        (v) => Number(v.data?.result[0]?.value[1]) > 0,
        30_000,
      )
      const heartbeats = await query("chimera_heartbeats_received_total")
      expect(heartbeats.data?.result[0]?.value[1]).toBe("4")
    } finally {
      proc.kill("SIGTERM")
      await proc.exited
    }
  }, 120_000)

  test("promtool check metrics accepts the exposition, and routes are patterns", async () => {
    const promtool = requireTool("promtool")
    const viewer = await createToken("viewer")
    const res = await call(cp, viewer, "GET", "/metrics")
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4")
    const text = await res.text()
    const checked = await run([promtool, "check", "metrics"], { stdin: text })
    expect(`${checked.code} ${checked.stdout}${checked.stderr}`).toBe("0 ")
    expect(text).toContain('chimera_build_info{version="0.1.0"')
    expect(text).toContain('route="/api/agent/:nodeId/heartbeat"')
    expect(text).not.toContain("web-1")
    expect(text).toContain('chimera_heals_total{outcome="failed"} 0')
  })

  test("drift and heals reported by agents, and deploys the CLI records, are counted", async () => {
    const credential = await enrollNode(cp, "heal-1")
    const at = clock.now().toISOString()
    const system = { profile: OTHER, current: OTHER, booted: GEN }
    const reports = [
      { seq: 1, at, type: "drift.detected", data: { kinds: ["profile-drift", "runtime-drift"], desired: GEN, system } },
      { seq: 2, at, type: "heal.started", data: { desired: GEN, attempt: 1 } },
      { seq: 3, at, type: "heal.succeeded", data: { desired: GEN, attempt: 1, durationMs: 40 } },
    ]
    expect((await call(cp, credential, "POST", "/api/agent/heal-1/reports", { reports })).status).toBe(200)
    // A replayed batch (an agent that lost the answer) is stored once, so it is counted once.
    expect((await call(cp, credential, "POST", "/api/agent/heal-1/reports", { reports })).status).toBe(200)
    // `chimera deploy` records its deploys in the same database; the control plane counts them when scraped.
    const { db } = await openDatabase(`sqlite://${join(cp.dataDir, "chimera.db")}`)
    const createdAt = clock.now().toISOString()
    const finishedAt = new Date(clock.now().getTime() + 3500).toISOString()
    await deploymentStore(db).save({
      id: "d-1",
      kind: "deploy",
      createdAt,
      finishedAt,
      configPath: "x.nix",
      closure: GEN as StorePath,
      hash: GEN.slice(11, 43),
      isSystem: true,
      command: null,
      session: "chimera-deploy",
      status: "succeeded",
      targets: [],
    })
    await db.close()
    const text = await (await call(cp, cp.adminToken, "GET", "/metrics")).text()
    expect(text).toContain('chimera_drift_detected_total{kind="profile-drift"} 1')
    expect(text).toContain('chimera_drift_detected_total{kind="runtime-drift"} 1')
    expect(text).toContain('chimera_heals_total{outcome="succeeded"} 1')
    expect(text).toContain('chimera_heal_duration_seconds_bucket{le="0.05",outcome="succeeded"} 1')
    expect(text).toContain('chimera_heal_duration_seconds_bucket{le="0.025",outcome="succeeded"} 0')
    expect(text).toContain('chimera_deploy_duration_seconds_bucket{le="5",kind="deploy",status="succeeded"} 1')
    expect(text).toContain('chimera_deploy_duration_seconds_bucket{le="2.5",kind="deploy",status="succeeded"} 0')
    // Counted once, however often it is scraped.
    const again = await (await call(cp, cp.adminToken, "GET", "/metrics")).text()
    expect(again).toContain('chimera_deploy_duration_seconds_count{kind="deploy",status="succeeded"} 1')
  })

  test("a wrong, malformed or expired token gets 401 with a JSON error", async () => {
    const expiring = await createToken("metrics", 1)
    expect((await call(cp, expiring, "GET", "/metrics")).status).toBe(200)
    const wrong = `chm_api_${"A".repeat(43)}`
    for (const token of [wrong, "not-a-token", null]) {
      const res = await call(cp, token, "GET", "/metrics")
      expect(res.status).toBe(401)
      expect(res.headers.get("www-authenticate")).toContain("Bearer")
      const body = (await res.json()) as { error: string; code: string }
      expect(body.code).toBe("AUTHENTICATION_FAILED")
      expect(body.error.length).toBeGreaterThan(10)
    }
    clock.advance(2 * 86_400_000)
    const res = await call(cp, expiring, "GET", "/metrics")
    expect(res.status).toBe(401)
    expect((await res.json()) as unknown).toEqual({ error: "the API token has expired", code: "AUTHENTICATION_FAILED" })
  })

  test("a node credential or a session without the permission gets 403", async () => {
    const credential = await enrollNode(cp, "n-403")
    expect((await call(cp, credential, "GET", "/metrics")).status).toBe(403)
    await addUser(cp, "scraper", "metrics")
    const session = await login(cp, "scraper")
    expect((await call(cp, session, "GET", "/metrics")).status).toBe(200)
  })
})
