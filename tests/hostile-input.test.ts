// Hostile input against every route of a real control plane, which must answer bad input with a 4xx
// that says what is wrong: for each route, 1,000 generated requests with malformed, wrongly typed,
// oversized or injection-laden bodies, queries, path parameters and headers, then 10,000 more across all
// routes at once against a control plane of its own whose memory is measured. None may get a 5xx; every
// error is JSON that names the problem.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { connect, type Socket } from "node:net"
import fc from "fast-check"
import { aiSettingsFor } from "./support/ai-chat.ts"
import { enrollNode, heartbeatBody } from "./support/auth.ts"
import { freePort, spawnControlPlane, startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, startLlmServer } from "./support/llm-server.ts"

const RUNS = 1000
/** The mixed run across every route at once: at least 10,000 generated inputs. */
const VOLUME = 10_000
const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

let cp: TestControlPlane
/** The AI chat's model: answers every call at once, so a valid message gets a real answer, not a 503. */
let llm: LlmServer
let nodeCredential: string
/** A join token the control plane issued: a made-up one is refused before its body is read. */
let joinToken: string

beforeAll(async () => {
  llm = await startLlmServer("openai", { fallback: { text: "ok" } })
  cp = await startInProcess({ ai: aiSettingsFor(llm) })
  nodeCredential = await enrollNode(cp, "n1")
  const issued = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
  joinToken = ((await issued.json()) as { token: string }).token
})

afterAll(async () => {
  await cp.stop()
  await llm.stop()
})

type Auth = "admin" | "node" | "join" | "none"
interface Route {
  method: string
  path: string
  auth: Auth
  /** A valid body, mutated by the generators. */
  body?: Record<string, unknown>
  /** Acts on a node: aimed at the sacrificial node "victim", not at "n1" whose credential the suite uses. */
  victim?: boolean
}

const ROUTES: Route[] = [
  { method: "GET", path: "/api/health", auth: "none" },
  { method: "GET", path: "/api/health/live", auth: "none" },
  { method: "POST", path: "/api/agent/enroll", auth: "join", body: { nodeId: "n2", hostname: "h", agentVersion: "1" } },
  { method: "POST", path: "/api/nodes/join-tokens", auth: "admin", body: { ttlSeconds: 600, nodeId: "n3" } },
  { method: "GET", path: "/api/nodes", auth: "admin" },
  { method: "GET", path: "/api/nodes/:id", auth: "admin" },
  { method: "PUT", path: "/api/nodes/:id/desired", auth: "admin", body: { closure: GEN1 } },
  {
    method: "POST",
    path: "/api/agent/:nodeId/heartbeat",
    auth: "node",
    body: heartbeatBody("n1"),
  },
  {
    method: "POST",
    path: "/api/agent/:nodeId/reports",
    auth: "node",
    body: {
      reports: [{ seq: 1, at: new Date().toISOString(), type: "heal.started", data: { desired: GEN1, attempt: 1 } }],
    },
  },
  { method: "GET", path: "/api/agent/:nodeId/commands", auth: "node" },
  { method: "POST", path: "/api/agent/:nodeId/commands/:id/ack", auth: "node", body: { success: true, output: "" } },
  { method: "GET", path: "/api/events", auth: "admin" },
  { method: "GET", path: "/api/events/stream", auth: "admin" },
  // The trust layer: sessions, users, tokens, node identity, audit.
  {
    method: "POST",
    path: "/api/auth/login",
    auth: "none",
    body: { username: "hostile", password: "not-the-password" },
  },
  { method: "POST", path: "/api/auth/refresh", auth: "admin" },
  { method: "POST", path: "/api/auth/verify", auth: "admin", body: { token: "eyJhbGciOiJub25lIn0.e30." } },
  { method: "POST", path: "/api/auth/revoke", auth: "admin", body: { jti: "00000000-0000-0000-0000-000000000000" } },
  { method: "GET", path: "/api/auth/sessions", auth: "admin" },
  {
    method: "POST",
    path: "/api/auth/password",
    auth: "admin",
    body: { currentPassword: "x", newPassword: "a-long-new-password" },
  },
  { method: "GET", path: "/api/users", auth: "admin" },
  {
    method: "POST",
    path: "/api/users",
    auth: "admin",
    body: { username: "h1", password: "a-long-password", role: "viewer" },
  },
  { method: "DELETE", path: "/api/users/:username", auth: "admin" },
  { method: "PUT", path: "/api/users/:username/password", auth: "admin", body: { password: "a-long-password" } },
  { method: "PUT", path: "/api/users/:username/role", auth: "admin", body: { role: "viewer" } },
  { method: "GET", path: "/api/tokens", auth: "admin" },
  { method: "POST", path: "/api/tokens", auth: "admin", body: { name: "ci", role: "viewer", ttlDays: 1 } },
  { method: "DELETE", path: "/api/tokens/:id", auth: "admin" },
  { method: "POST", path: "/api/nodes/:id/rotate-credential", auth: "admin", victim: true },
  { method: "POST", path: "/api/nodes/:id/revoke", auth: "admin", victim: true },
  { method: "DELETE", path: "/api/nodes/:id", auth: "admin", victim: true },
  { method: "POST", path: "/api/agent/:nodeId/credential", auth: "node" },
  { method: "GET", path: "/api/audit", auth: "admin" },
  // CLI sessions (real bash sessions on the control plane's private tmux server).
  { method: "POST", path: "/api/cli/sessions", auth: "admin", body: { cli_tool: "bash", cwd: "/tmp", mode: "cli" } },
  { method: "GET", path: "/api/cli/sessions", auth: "admin" },
  { method: "GET", path: "/api/cli/sessions/:sessionId", auth: "admin" },
  { method: "DELETE", path: "/api/cli/sessions/:sessionId", auth: "admin" },
  { method: "POST", path: "/api/cli/sessions/:sessionId/interrupt", auth: "admin" },
  {
    method: "POST",
    path: "/api/cli/sessions/:sessionId/input",
    auth: "admin",
    body: { command: "true", timeout: 1000 },
  },
  { method: "GET", path: "/api/cli/sessions/:sessionId/history", auth: "admin" },
  { method: "GET", path: "/api/cli/providers", auth: "admin" },
  { method: "GET", path: "/api/cli/providers/:provider/health", auth: "admin" },
  { method: "GET", path: "/api/cli/status", auth: "admin" },
  { method: "GET", path: "/ws/cli/:sessionId", auth: "admin" },
  {
    method: "POST",
    path: "/api/run-command",
    auth: "admin",
    body: { command: "ls -la /tmp", node: "n1", timeout: 5, sudo_password: "hostile-sudo-pw" },
  },
  { method: "POST", path: "/api/create-session", auth: "admin", body: { client_info: { tool: "fuzz" } } },
  { method: "GET", path: "/api/session/:sessionId", auth: "admin" },
  { method: "GET", path: "/api/session/:sessionId/history", auth: "admin" },
  { method: "DELETE", path: "/api/session/:sessionId", auth: "admin" },
  { method: "GET", path: "/api/registry", auth: "admin" },
  { method: "GET", path: "/metrics", auth: "admin" },
  // Aimed at a node that is not enrolled (a 404), so no valid request waits out a relay's timeout.
  { method: "POST", path: "/api/fleet/run", auth: "admin", body: { command: "uptime", nodes: ["victim"], timeout: 1 } },
  // A run that was never made: a 404 whatever the id.
  { method: "POST", path: "/api/fleet/run/:runId/cancel", auth: "admin" },
  // Operations: this control plane reaches no node over SSH, so a valid deploy or rollback is a 422.
  { method: "GET", path: "/api/auth/me", auth: "admin" },
  { method: "GET", path: "/api/deployments", auth: "admin" },
  { method: "GET", path: "/api/deployments/:id", auth: "admin" },
  { method: "POST", path: "/api/deployments", auth: "admin", body: { targets: ["n1"], closure: GEN1, dry_run: true } },
  {
    method: "POST",
    path: "/api/deployments/records",
    auth: "admin",
    body: {
      id: "20260101000000-abcdef12",
      kind: "deploy",
      createdAt: "2026-01-01T00:00:00.000Z",
      finishedAt: "2026-01-01T00:00:01.000Z",
      configPath: "/etc/chimera/web.nix",
      closure: GEN1,
      hash: GEN1.slice(11, 43),
      isSystem: true,
      command: null,
      session: "chimera-deploy",
      status: "succeeded",
      targets: [
        {
          target: "n1",
          status: "deployed",
          before: null,
          copy: { missingPaths: 0, narBytes: 0 },
          previous: null,
          error: null,
          timings: [],
          startedAt: "2026-01-01T00:00:00.000Z",
          ms: 10,
          log: [],
        },
      ],
    },
  },
  { method: "POST", path: "/api/rollbacks", auth: "admin", body: { targets: ["victim"] } },
  {
    method: "POST",
    path: "/api/operations/records",
    auth: "admin",
    body: { operation: "exec", entries: [{ target: "root@10.0.0.1:22", command: "uptime", ok: true }] },
  },
  { method: "POST", path: "/api/congruence", auth: "admin", body: { targets: ["n1"], closure: GEN1 } },
  // What the web dashboard reads.
  { method: "GET", path: "/api/nodes/:id/health-history", auth: "admin" },
  { method: "GET", path: "/api/nodes/:id/commands", auth: "admin" },
  { method: "GET", path: "/api/fleet/tags", auth: "admin" },
  { method: "GET", path: "/api/events/last-id", auth: "admin" },
  { method: "GET", path: "/api/incidents", auth: "admin" },
  { method: "GET", path: "/api/incidents/:id", auth: "admin" },
  { method: "POST", path: "/api/incidents/:id/resolve", auth: "admin", body: {} },
  // No channel is configured here: each valid body gets a 422 naming what to set.
  { method: "POST", path: "/api/notifications/test", auth: "admin", body: { channel: "slack" } },
  // The AI chat (its model is the scripted one above).
  { method: "GET", path: "/api/v1/ai/chat", auth: "admin" },
  { method: "POST", path: "/api/v1/ai/chat", auth: "admin", body: { nodeId: "n1" } },
  { method: "GET", path: "/api/v1/ai/chat/:id", auth: "admin" },
  { method: "PATCH", path: "/api/v1/ai/chat/:id", auth: "admin", body: { model: "other-model" } },
  { method: "DELETE", path: "/api/v1/ai/chat/:id", auth: "admin" },
  { method: "POST", path: "/api/v1/ai/chat/:id/message", auth: "admin", body: { message: "hello" } },
  { method: "POST", path: "/api/v1/ai/chat/:id/message/stream", auth: "admin", body: { message: "hello" } },
  { method: "GET", path: "/api/v1/ai/chat/:id/follow", auth: "admin" },
  { method: "GET", path: "/api/v1/ai/chat/:id/question", auth: "admin" },
  { method: "POST", path: "/api/v1/ai/chat/:id/answer", auth: "admin", body: { questionId: 1, positive: false } },
  {
    method: "POST",
    path: "/api/v1/ai/chat/:id/answer/stream",
    auth: "admin",
    body: { questionId: 1, positive: false },
  },
  { method: "POST", path: "/api/v1/ai/chat/:id/compact", auth: "admin" },
  {
    method: "POST",
    path: "/api/v1/ai/chat/:id/cancel",
    auth: "admin",
    body: { turnId: "6f1c1c8e-3c9f-4f5e-9d3a-2b1f0e4c7a10" },
  },
  { method: "POST", path: "/api/v1/ai/chat/:id/steer", auth: "admin", body: { message: "look at n1" } },
]

const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 200 }),
  fc.constantFrom(
    "'; DROP TABLE nodes; --",
    "../../../../etc/passwd",
    "%00",
    "\u0000",
    "$(reboot)",
    "`id`",
    "<script>alert(1)</script>",
    "__proto__",
    "constructor",
    "x".repeat(70_000),
    "/nix/store/../../etc/shadow",
    "NaN",
    "-1",
    "1e309",
    "9007199254740993",
  ),
)

const jsonish = fc.oneof(
  fc.jsonValue(),
  fc.dictionary(nasty, fc.jsonValue(), { maxKeys: 5 }),
  fc.constant({ __proto__: { admin: true } }),
  fc.constant(JSON.parse('{"__proto__": {"polluted": 1}, "constructor": {"prototype": {"x": 1}}}')),
)

/** A valid body with one field replaced, deleted or joined by a stranger. */
const mutated = (body: Record<string, unknown>) =>
  fc
    .tuple(fc.constantFrom(...Object.keys(body), "extra"), fc.oneof(jsonish, fc.constant(undefined)))
    .map(([key, value]) => {
      const copy: Record<string, unknown> = structuredClone(body)
      if (value === undefined) delete copy[key]
      else copy[key] = value
      return JSON.stringify(copy)
    })

const rawBody = (route: Route) =>
  fc.oneof(
    jsonish.map((v) => JSON.stringify(v)),
    nasty,
    fc.constantFrom(
      "{",
      "[",
      '{"a":',
      "null",
      "",
      "\u00ff\u00fe",
      '{"a": 1}'.repeat(1000),
      "[".repeat(5000) + "]".repeat(5000),
    ),
    ...(route.body ? [mutated(route.body), mutated(route.body)] : []),
  )

const contentType = fc.oneof(
  fc.constant("application/json"),
  fc.constant("application/json"),
  fc.constantFrom(
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "",
  ),
  fc.string({ maxLength: 40 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
)

const pathParam = fc.oneof(
  fc.constant("n1"),
  fc.constant("n1"),
  fc.constantFrom("..", "%2e%2e", "%00", "a".repeat(300), "n1%2fx", "ñ", "%ff", " "),
  fc.string({ maxLength: 30 }).map(encodeURIComponent),
)

const queryString = fc
  .array(
    fc.tuple(
      fc.constantFrom("node", "type", "after", "limit", "wait", "x", "__proto__", "actor", "action", "result", "since"),
      nasty,
    ),
    { maxLength: 4 },
  )
  // Keep the command long poll short: a valid wait of 1-30 s would only make the suite slow.
  .map((pairs) =>
    pairs.map(([k, v]) => [k, k === "wait" && Number(v) > 0 && Number(v) <= 30 ? "0" : v] as [string, string]),
  )
  .map((pairs) => new URLSearchParams(pairs).toString())

const authHeader = (route: Route) =>
  fc
    .oneof(
      fc.constant("valid"),
      fc.constant("valid"),
      fc.constant("valid"),
      fc.constantFrom(
        "",
        "Bearer",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer chm_admin_x",
        "bearer x",
        `Bearer ${"a".repeat(5000)}`,
        "Bearer \t",
      ),
      fc.string({ maxLength: 60 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
    )
    .map((h) =>
      h !== "valid"
        ? h
        : route.auth === "node"
          ? `Bearer ${nodeCredential}`
          : route.auth === "admin"
            ? `Bearer ${cp.adminToken}`
            : `Bearer ${joinToken}`,
    )

async function send(route: Route, req: Sample) {
  const url = `${cp.url}${req.path}${req.query ? `?${req.query}` : ""}`
  const headers: Record<string, string> = {}
  if (req.type) headers["content-type"] = req.type
  if (req.auth) headers.authorization = req.auth
  const hasBody = route.method !== "GET"
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), 5000)
  try {
    const res = await fetch(url, {
      method: route.method,
      headers,
      body: hasBody ? req.body : undefined,
      signal: abort.signal,
    })
    if (res.headers.get("content-type")?.includes("text/event-stream")) {
      await res.body?.cancel()
      return { status: res.status, body: null }
    }
    return { status: res.status, body: await res.text() }
  } finally {
    clearTimeout(timer)
  }
}

type Sample = { path: string; query: string; body: string; type: string; auth: string }

const requestFor = (route: Route) =>
  fc.record({
    path: fc
      .tuple(pathParam, pathParam)
      .map(([a, b]) => (route.victim ? [a.replace("n1", "victim"), b] : [a, b]))
      .map(([a = "", b = ""]) =>
        route.path
          .replace(":nodeId", a)
          .replace(":username", a)
          .replace(":sessionId", a)
          .replace(":provider", a)
          .replace(":id", route.path.includes(":nodeId") ? b : a),
      ),
    query: queryString,
    body: rawBody(route),
    type: contentType,
    auth: authHeader(route),
  })

/** Sends 16 at a time; collects statuses and every answer that breaks the rules. */
async function sendAll(samples: (readonly [Route, Sample])[]) {
  const failures: string[] = []
  const statuses = new Map<number, number>()
  for (let i = 0; i < samples.length; i += 16) {
    await Promise.all(
      samples.slice(i, i + 16).map(async ([route, req]) => {
        const { status, body } = await send(route, req)
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
        // Bun's HTTP server refuses a request line or headers over 16 KiB with a bare 431 before
        // the app sees the request; that is the only answer allowed to carry no JSON.
        if (status === 431 && req.path.length + req.query.length + req.auth.length > 16_000) return
        if (status >= 500)
          failures.push(`${status} for ${route.method} ${JSON.stringify(req).slice(0, 300)}: ${body?.slice(0, 200)}`)
        if (status >= 400 && body !== null) {
          let parsed: { error?: unknown; code?: unknown } | null = null
          try {
            parsed = JSON.parse(body)
          } catch {}
          if (typeof parsed?.error !== "string" || parsed.error.length < 8 || typeof parsed.code !== "string")
            failures.push(
              `${status} without a JSON error for ${JSON.stringify(req).slice(0, 200)}: ${body.slice(0, 200)}`,
            )
        }
      }),
    )
  }
  return { failures, statuses }
}

/** Opens a raw connection to the control plane, writes `head` and returns what comes back within `ms`. */
async function rawExchange(head: string, ms: number, then?: (socket: Socket) => void): Promise<string> {
  const { hostname, port } = new URL(cp.url)
  const socket = connect(Number(port), hostname)
  let got = ""
  socket.on("data", (d) => {
    got += d.toString()
  })
  socket.on("error", () => {})
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()))
  socket.write(head)
  then?.(socket)
  await Bun.sleep(ms)
  socket.destroy()
  return got
}

const chimera500s = async () => {
  const text = await (await cp.api("/metrics")).text()
  return [...text.matchAll(/^chimera_http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\d+)/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  )
}

describe("hostile input", () => {
  test("an unauthenticated chunked body is refused (401) before it is read, not buffered to its limit", async () => {
    // One chunk of a body that would go on to 48 MiB; the answer must come while the rest is unsent.
    const chunk = "x".repeat(64 * 1024)
    const head =
      "POST /api/agent/anyone/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
      `Transfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n`
    const answer = await rawExchange(head, 2000)
    expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 401 Unauthorized")
  })

  test("a client that goes away before its body is whole is no server error", async () => {
    const before = await chimera500s()
    for (const [path, auth] of [
      ["/api/agent/n1/heartbeat", `Bearer ${nodeCredential}`],
      ["/api/auth/login", null],
    ] as const) {
      const head =
        `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n` +
        `${auth ? `Authorization: ${auth}\r\n` : ""}\r\n{"nodeId":`
      await rawExchange(head, 300, (socket) => socket.end())
    }
    await Bun.sleep(300)
    expect(await chimera500s()).toBe(before)
  })

  test("the route table here covers every route the API serves", () => {
    const served = cp.routes.map((r) => `${r.method} ${r.path}`).sort()
    expect(ROUTES.map((r) => `${r.method} ${r.path}`).sort()).toEqual(served)
  })

  for (const route of ROUTES) {
    test(`${route.method} ${route.path}: ${RUNS} hostile requests, no 5xx, every error a JSON body that names the problem`, async () => {
      const samples = fc.sample(requestFor(route), { numRuns: RUNS, seed: 42 })
      const { failures, statuses } = await sendAll(samples.map((req) => [route, req]))
      expect(failures.slice(0, 5)).toEqual([])
      // The generators must actually reach past authentication and validation, not only bounce off 401.
      expect([...statuses.keys()].some((s) => s !== 401)).toBe(true)
      if (route.body) expect([...statuses.keys()]).toContain(422)
    }, 120_000)
  }

  test(`${VOLUME} requests across all routes at random: zero 5xx, and the control plane's memory stays flat`, async () => {
    // Measured on a control plane of its own (`chimera web` as a child process), so the number is the
    // server's alone, not this test runner's with every other suite's leftovers in it.
    const inProcess = cp
    const inProcessCredential = nodeCredential
    const child = await spawnControlPlane(freePort(), {
      env: { CHIMERA_AI_PROVIDER: "openai", CHIMERA_AI_BASE_URL: llm.baseUrl, CHIMERA_AI_API_KEY: llm.apiKey },
    })
    try {
      cp = child
      nodeCredential = await enrollNode(child, "n1")
      const rssMiB = async () => {
        const status = await Bun.file(`/proc/${child.proc.pid}/status`).text()
        return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024
      }
      const mixed = fc.constantFrom(...ROUTES).chain((route) => requestFor(route).map((req) => [route, req] as const))
      /** Sends in rounds of 1,000, noting the server's RSS after each round. */
      const run = async (seed: number) => {
        const samples = fc.sample(mixed, { numRuns: VOLUME, seed })
        const failures: string[] = []
        const rss: number[] = []
        let answered = 0
        for (let i = 0; i < samples.length; i += 1000) {
          const round = await sendAll(samples.slice(i, i + 1000))
          failures.push(...round.failures)
          answered += [...round.statuses.values()].reduce((a, b) => a + b, 0)
          rss.push(await rssMiB())
        }
        return { failures, answered, rss }
      }
      const median = (xs: number[]) => {
        const sorted = xs.toSorted((a, b) => a - b)
        return (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2
      }
      // A single RSS sample says little: it swings by 20 MiB or more with the collector's timing. Nor is
      // the start a fair reference: the allocator settles over the first 20,000-40,000 requests (medians
      // of ten samples per 10,000, measured: 113, 142, 133, 136, 136, 140, then 24 runs in all, 240,000
      // requests, all between 129 and 141 MiB). So two runs warm up, the median of the next two is the
      // reference, and the median of the two after them (the 10,000 the issue asks for, and as many again)
      // must stay within 28 MiB of it. Without a leak it moved by -1 to +17 MiB in ten tries; with a leak
      // planted in the server's fetch handler it moved by +31 MiB at 1.5 KiB a request, +47 at 2 KiB.
      const runs = []
      for (const seed of [6, 7, 8, 9, 10, 11]) runs.push(await run(seed))
      expect(runs.flatMap((r) => r.failures).slice(0, 5)).toEqual([])
      for (const r of runs) expect(r.answered).toBe(VOLUME)
      expect(child.proc.exitCode).toBeNull()
      const reference = median([...runs[2]!.rss, ...runs[3]!.rss])
      const measured = median([...runs[4]!.rss, ...runs[5]!.rss])
      expect(measured - reference).toBeLessThan(28)
    } finally {
      cp = inProcess
      nodeCredential = inProcessCredential
      await child.stop()
    }
  }, 300_000)

  test("unauthenticated calls get 401 on every route but health; credentials only work where they belong", async () => {
    for (const route of ROUTES.filter((r) => r.auth !== "none")) {
      const path = route.path.replace(":nodeId", "n1").replace(":id", "n1")
      const res = await fetch(`${cp.url}${path}`, {
        method: route.method,
        body: route.method === "GET" ? undefined : "{}",
      })
      expect(`${route.method} ${route.path} ${res.status}`).toBe(`${route.method} ${route.path} 401`)
      const asOther = route.auth === "admin" ? nodeCredential : route.auth === "node" ? cp.adminToken : null
      if (!asOther) continue
      const wrong = await fetch(`${cp.url}${path}`, {
        method: route.method,
        headers: { authorization: `Bearer ${asOther}`, "content-type": "application/json" },
        body: route.method === "GET" ? undefined : JSON.stringify(route.body ?? {}),
      })
      expect(`${route.method} ${route.path} ${wrong.status}`).toBe(`${route.method} ${route.path} 403`)
    }
  })
})
