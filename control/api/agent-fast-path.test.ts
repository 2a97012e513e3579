// The agent fast path must answer exactly as the whole middleware chain does. Two apps over one real
// SQLite store, one with the fast path and one without, each with its own rate limiter on the same
// fixed clock, get the same requests in turn: good ones and every kind of refusal. Status, body,
// headers and the audit rows each request leaves must match.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { SQL } from "bun"
import { Hono } from "hono"
import { heartbeatBody } from "../../tests/support/auth.ts"
import { openTestStore } from "../../tests/support/store.ts"
import { createEventBus } from "../adapters/event-bus.ts"
import { createNix } from "../adapters/nix.ts"
import { currentProcessInstance } from "../adapters/process-instance.ts"
import { commandStore } from "../adapters/store/command-store.ts"
import { deploymentStore } from "../adapters/store/deployment-store.ts"
import { eventCursor } from "../adapters/store/event-cursor.ts"
import { storeProbe } from "../adapters/store/health-probe.ts"
import { incidentStore } from "../adapters/store/incident-store.ts"
import { nodeCommands } from "../adapters/store/node-commands.ts"
import type { sqlStore } from "../adapters/store/sql-store.ts"
import { createControlMetrics } from "../adapters/telemetry/prometheus.ts"
import { createTmuxSessions } from "../adapters/tmux.ts"
import { ChimeraConfig } from "../config-schema.ts"
import { createRateLimiter, DEFAULT_LIMITS } from "../domain/auth/rate-limiter.ts"
import { createProviders } from "../domain/cli-providers.ts"
import { createCliSessions } from "../domain/cli-sessions.ts"
import { createCommandService } from "../domain/command-service.ts"
import { createFleet, type Fleet } from "../domain/fleet.ts"
import { createHealthHistory } from "../domain/health-history.ts"
import { incidentPolicy } from "../domain/incident-routing.ts"
import { createIncidents } from "../domain/incidents.ts"
import { createNotifyTest } from "../domain/notify-test.ts"
import { type Clock, systemClock } from "../domain/ports.ts"
import { createRelay } from "../domain/relay.ts"
import { createReportQuota, DEFAULT_REPORT_QUOTA } from "../domain/report-quota.ts"
import { hashToken, newToken } from "../domain/tokens.ts"
import { createFleetOperations } from "../ops/fleet-operations.ts"
import { createTrust, DEFAULT_TRUST, type TrustSettings } from "../trust.ts"
import { agentFastPath, fastActions, fastAnswer } from "./agent-fast-path.ts"
import { createApi, type createApp, type TrustDeps } from "./app.ts"
import type { ApiEnv } from "./auth.ts"
import { onError } from "./errors.ts"
import { createRefusals } from "./refusals.ts"

const dashboardOf = (db: SQL) => ({
  history: createHealthHistory(),
  nodeCommands: nodeCommands(db),
  events: eventCursor(db),
  tags: {},
})

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
/** A legal store path whose name looks like a node credential: the answer that carries it is redacted. */
const SECRETISH = `/nix/store/y1mlmacm344nc9ik51ajfsqv9pl6m87x-chm_node_${"A".repeat(43)}`
const AGENT_LIMIT = 25

/** What a test sends requests to: an app, or the server's fetch with its fast path in front. */
interface App {
  request(path: string, init?: RequestInit): Response | Promise<Response>
  routes: ReturnType<typeof createApp>["routes"]
}
let dir: string
let db: SQL
let closeStore: () => Promise<void>
let fleet: Fleet
let store: ReturnType<typeof sqlStore>
let fast: App
let slow: App
let trust: TrustDeps
let countedFast: string[]
let countedSlow: string[]
let admin: string
const creds: Record<string, string> = {}

const clock: Clock = { now: () => new Date(Date.UTC(2026, 0, 1, 12, 0, 0)) }
const settings: TrustSettings = {
  ...DEFAULT_TRUST,
  rateLimits: { agent: { limit: AGENT_LIMIT, windowMs: 60_000 }, api: { limit: 1e9, windowMs: 60_000 } },
}

beforeAll(async () => {
  const opened = await openTestStore("fast-path")
  ;({ dir, db, store } = opened)
  closeStore = opened.close
  admin = newToken("admin")
  await store.putApiToken({
    id: "bootstrap-admin",
    name: "bootstrap admin",
    tokenHash: hashToken(admin),
    role: "admin",
    createdAt: clock.now().toISOString(),
  })
  const bus = createEventBus()
  fleet = createFleet({ store, bus, clock: systemClock })
  const cli = createCliSessions({
    tmux: createTmuxSessions({ socketName: `chimera-fast-path-${process.pid}` }),
    providers: createProviders({ clock }),
    clock,
    dataDir: dir,
    instance: currentProcessInstance(),
  })
  const commands = createCommandService({ targets: null, store: commandStore(db), clock })
  const relay = createRelay({ fleet, store, clock, pollFallbackMs: null })
  const make = (agentFastPath: boolean) => {
    const t = createTrust({ db, dialect: opened.dialect, dataDir: dir, store, bus, clock, settings })
    // What each request adds to the metrics, to compare the two ways in.
    const counted: string[] = []
    const metrics = createControlMetrics({ listNodes: () => fleet.listNodes() })
    const { request, heartbeat } = metrics
    metrics.request = (method, route, status, seconds) => {
      counted.push(`${method} ${route} ${status}`)
      request(method, route, status, seconds)
    }
    metrics.heartbeat = () => {
      counted.push("heartbeat")
      heartbeat()
    }
    const operations = createFleetOperations({
      fleet,
      deployments: deploymentStore(db),
      nix: createNix(),
      targets: null,
      clock,
    })
    const probe = storeProbe(`sqlite://${join(dir, "chimera.db")}`, db, opened.dialect)
    const api = createApi({
      fleet,
      bus,
      metrics,
      trust: t,
      commands,
      cli,
      relay,
      operations,
      dashboard: dashboardOf(db),
      agentFastPath,
      storeProbe: probe,
      incidents: createIncidents({
        store: incidentStore(db),
        clock,
        policy: incidentPolicy(ChimeraConfig.parse({}).incidents),
        channels: [],
        currentClosure: async () => null,
        deployment: async () => null,
        isNode: async () => false,
        note: (type, nodeId, data) => fleet.note(type, nodeId, data),
        wake: () => {},
      }),
      notifyTest: createNotifyTest({ configured: { channels: [], tickets: null }, clock }),
    })
    // With the fast path, requests go through the server's fetch (agent-fast-path.ts agentFront), as
    // Bun.serve hands them over; without it, to the app alone.
    const app: App = agentFastPath
      ? {
          request: (path, init) => api.fetch(new Request(`http://localhost${path}`, init), undefined),
          routes: api.app.routes,
        }
      : api.app
    return { app, trust: t, counted }
  }
  const a = make(true)
  fast = a.app
  trust = a.trust
  countedFast = a.counted
  const b = make(false)
  slow = b.app
  countedSlow = b.counted
  for (const id of ["n1", "n2", "n3", "n4"]) {
    const jt = await post(fast, "/api/nodes/join-tokens", admin, { nodeId: id })
    const enrolled = await post(fast, "/api/agent/enroll", String(jt.token), {
      nodeId: id,
      hostname: id,
      agentVersion: "t",
    })
    creds[id] = String(enrolled.credential)
  }
})

afterAll(() => closeStore())

async function post(app: App, path: string, token: string, body: unknown) {
  const res = await app.request(path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  })
  if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`)
  return (await res.json()) as Record<string, unknown>
}

/** The test agents' heartbeat at a fixed time (the clock's), with `over` on top (invalid values too). */
const health = (nodeId: string, over: Record<string, unknown> = {}) => ({
  ...heartbeatBody(nodeId),
  at: "2026-01-01T12:00:00.000Z",
  ...over,
})

interface Req {
  method?: string
  path: string
  headers?: Record<string, string>
  body?: string
}

/** As a client sends it over HTTP: a body comes with its Content-Length (a Request made here has none). */
const requestInit = (r: Req): RequestInit => ({
  method: r.method ?? "POST",
  headers: r.body === undefined ? r.headers : { "content-length": String(Buffer.byteLength(r.body)), ...r.headers },
  body: r.body,
})

const ownLimiter = () => createRateLimiter({ ...DEFAULT_LIMITS, ...settings.rateLimits }, clock)

const auditRows = async () => Number(((await db`SELECT count(*) AS n FROM audit_log`) as { n: number }[])[0]?.n)

async function send(app: App, r: Req) {
  const before = await auditRows()
  const res = await app.request(r.path, requestInit(r))
  const body = await res.text()
  const headers = Object.fromEntries([...res.headers].filter(([k]) => k !== "x-request-id"))
  const given = res.headers.get("x-request-id")
  const requestId = given === null ? "none" : given === r.headers?.["x-request-id"] ? "the caller's" : "its own"
  return { status: res.status, body, headers, audited: (await auditRows()) - before, requestId }
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g
/** Ids and times aside, for state a request uses up, so that each app gets its own. */
const plain = (x: Awaited<ReturnType<typeof send>>) => ({
  ...x,
  body: x.body.replace(UUID, "<id>").replace(ISO, "<at>"),
})

/** The request through both apps; what each answered and recorded, which must be the same. */
async function both(r: Req) {
  const [fastBefore, slowBefore] = [countedFast.length, countedSlow.length]
  const a = await send(fast, r)
  const b = await send(slow, r)
  expect(a).toEqual(b)
  // Counted once, under the same route and status, whichever way it went.
  expect(countedFast.slice(fastBefore)).toEqual(countedSlow.slice(slowBefore))
  expect(countedFast.length - fastBefore).toBeGreaterThan(0)
  return a
}

const as = (node: string, extra: Record<string, string> = {}): Record<string, string> => ({
  authorization: `Bearer ${creds[node]}`,
  "content-type": "application/json",
  ...extra,
})
const beat = (node: string, path = node, over: Record<string, unknown> = {}, headers = as(node)): Req => ({
  path: `/api/agent/${path}/heartbeat`,
  headers,
  body: JSON.stringify(health(node, over)),
})

describe("agent fast path", () => {
  test("it takes the hot agent routes whose rules let it skip audit rows and redaction", () => {
    // Not the command poll: its answer is the operator's commands, verbatim (issuesSecret).
    expect(fastActions().sort()).toEqual(["ack", "heartbeat", "reports"])
  })

  test("the chain it stands in for is the one it was written against: a new middleware must be accounted for", () => {
    // The fast path runs the checks of the chain's middlewares itself (see agent-fast-path.ts). One added
    // in front of /api/* later (security headers, metrics, another audit field) would silently not run
    // for the four hot routes: this fails until agent-fast-path.ts does what it does, and this list says so.
    const hot = "/api/agent/n1/heartbeat"
    const matches = (pattern: string) => new RegExp(`^${pattern.replaceAll("*", ".*")}$`).test(hot)
    const middlewares = fast.routes.filter((r) => r.method === "ALL" && matches(r.path)).map((r) => r.path)
    // requestMetrics (in front of the fast path, so hot routes are counted too), then agentFastPath,
    // then auditTrail, redactAnswers, guard, bodyLimits, auditBefore (app.ts). auditBefore writes rows
    // only for audited mutating routes, which the fast path never takes (agent-fast-path.ts, HOT).
    expect(middlewares).toEqual(["/*", "/api/agent/*", "/api/*", "/api/*", "/api/*", "/api/*", "/api/*"])
  })

  test("plain agent requests are answered by the fast path; anything unusual is passed on untouched", async () => {
    const probe = new Hono<ApiEnv>()
      // A limiter of its own: the two apps' must count the same requests.
      .use(
        "/api/agent/*",
        agentFastPath(
          fastAnswer({
            fleet,
            authenticator: trust.authenticator,
            limiter: ownLimiter(),
            quota: createReportQuota(DEFAULT_REPORT_QUOTA, systemClock),
            // Refusals of its own too: windows it opened would hide the fast app's first rows.
            refusals: createRefusals({ audit: trust.audit, clock }),
          }),
        ),
      )
      .all("*", (c) => c.text("passed on", 418))
    probe.onError(onError)
    const taken = async (r: Req) => {
      const res = await probe.request(r.path, requestInit(r))
      if (res.status !== 418) return true
      // Passed on before any side effect: no request id, no rate-limit count.
      expect([...res.headers.keys()].filter((k) => k.startsWith("x-"))).toEqual([])
      return false
    }
    const poll = { method: "GET", path: "/api/agent/n1/commands?wait=0", headers: as("n1") }
    expect(await taken(beat("n1"))).toBe(true)
    expect(await taken(beat("n1", "n2"))).toBe(true) // refused by the fast path itself (403)
    expect(await taken({ ...beat("n1"), body: "{" })).toBe(true) // 400
    expect(await taken(poll)).toBe(false) // its rule keeps it on the chain
    expect(await taken({ ...beat("n1"), path: "/api/agent/n%31/heartbeat" })).toBe(true) // the router's path is n1
    expect(await taken({ ...beat("n1"), path: "/api/agent/n%251/heartbeat" })).toBe(false)
    expect(await taken({ ...beat("n1"), path: "/api/agent/n1/heartbeat/" })).toBe(false)
    expect(await taken({ ...beat("n1"), headers: as("n1", { "content-type": "text/plain" }) })).toBe(false)
    expect(await taken({ ...beat("n1"), headers: as("n1", { authorization: `Bearer ${admin}` }) })).toBe(false)
    expect(await taken({ ...beat("n1"), body: `{"pad":"${"x".repeat(1024 * 1024)}"}` })).toBe(false)
    expect(await taken({ ...poll, method: "HEAD" })).toBe(false)
    expect(await taken({ ...beat("n1"), method: "PUT" })).toBe(false)
    // Whether a body came is told from Content-Length alone: an empty or missing one is passed on.
    expect(await taken({ ...beat("n1"), body: "" })).toBe(false)
    expect(await taken({ ...beat("n1"), body: undefined })).toBe(false)
    expect(await taken({ ...beat("n1"), path: "/api/agent/n1/credential" })).toBe(false)
  })

  test("heartbeats answer alike, good or refused, with the same status, body, headers and audit rows", async () => {
    const ok = await both(beat("n1"))
    expect(ok.status).toBe(200)
    expect(ok.audited).toBe(0)
    expect(ok.requestId).toBe("its own")
    // The caller's id is not taken, either way in (audit-trail.ts, identify).
    expect((await both(beat("n1", "n1", {}, as("n1", { "x-request-id": "req-42" })))).requestId).toBe("its own")
    // Another node's route: refused, and noted (the first of its window is an audit row, either way in).
    const other = await both(beat("n1", "n2"))
    expect(other.status).toBe(403)
    expect(other.audited).toBe(1)
    const [row] = (await db`SELECT actor, action, node_id, result, detail FROM audit_log ORDER BY id DESC LIMIT 1`) as {
      actor: string
      action: string
      node_id: string
      result: string
      detail: string
    }[]
    expect(row).toMatchObject({ actor: "node:n1", action: "POST /api/agent/:nodeId/heartbeat", node_id: "n2" })
    expect(JSON.parse(row?.detail ?? "{}")).toEqual({ refused: 1, code: "PERMISSION_DENIED" })
    expect((await both(beat("n2", "n1", {}, as("n1")))).status).toBe(403) // another node in the body
    // The first refusal of its window, refused by the action (the body names another node), not the
    // guard: noted either way in.
    const inBody = await both(beat("n4", "n3", {}, as("n3")))
    expect(inBody.status).toBe(403)
    expect(inBody.audited).toBe(1)
    expect((await both({ ...beat("n1"), body: '{"nodeId": "n1",' })).status).toBe(400)
    const invalid = await both(beat("n1", "n1", { load: [1, "high", 0], phase: "sleeping" }))
    expect(invalid.status).toBe(422)
    expect(invalid.body).toContain("load.1")
    // An interval under half a second would flap the node at every sweep (and 1e-50 is no PostgreSQL REAL).
    const flapping = await both(beat("n1", "n1", { heartbeatIntervalSeconds: 1e-50 }))
    expect(flapping.status).toBe(422)
    expect(flapping.body).toContain("heartbeatIntervalSeconds: expected at least 0.5 seconds")
    expect((await both({ ...beat("n1"), body: `{"pad":"${"x".repeat(1024 * 1024)}"}` })).status).toBe(413)
    expect((await both({ ...beat("n1"), headers: as("n1", { "content-type": "text/plain" }) })).status).toBe(415)
    // A body without a Content-Type is not taken for JSON, on either way in.
    const noType = { authorization: `Bearer ${creds.n1}` }
    expect((await both({ ...beat("n1"), headers: noType })).status).toBe(415)
    expect((await both({ ...beat("n1"), path: "/api/agent/n%31/heartbeat" })).status).toBe(200)
    expect((await both({ ...beat("n1"), path: "/api/agent/bad%20id/heartbeat" })).status).toBe(403)
    expect((await both({ ...beat("n1"), path: "/api/agent/n%251/heartbeat" })).status).toBe(403)
    // Paths the server's fetch hands to the app (a query, a doubled slash, another method): same answers.
    expect((await both({ ...beat("n1"), path: "/api/agent/n1/heartbeat?x=1" })).status).toBe(200)
    expect((await both({ ...beat("n1"), path: "//api/agent/n1/heartbeat" })).status).toBe(404)
    expect((await both({ ...beat("n1"), method: "PUT" })).status).toBe(405)
    expect((await both({ ...beat("n1"), body: "" })).status).toBe(400)
    expect((await both({ ...beat("n1"), body: undefined })).status).toBe(400)
  })

  test("credentials: unknown, revoked, of a user, of enrolment, malformed or missing are refused alike", async () => {
    const unknown = `chm_node_${"B".repeat(43)}`
    const unknownRes = await both(beat("n1", "n1", {}, as("n1", { authorization: `Bearer ${unknown}` })))
    expect(unknownRes.status).toBe(401)
    expect(unknownRes.audited).toBe(1)
    // A token of its own: the admin token's budget was spent on the fast app only, setting up.
    const probe = newToken("api")
    await store.putApiToken({
      id: "probe",
      name: "probe",
      tokenHash: hashToken(probe),
      role: "admin",
      createdAt: clock.now().toISOString(),
    })
    expect((await both(beat("n1", "n1", {}, as("n1", { authorization: `Bearer ${probe}` })))).status).toBe(403)
    const jt = await post(fast, "/api/nodes/join-tokens", admin, { nodeId: "n9" })
    expect((await both(beat("n1", "n1", {}, as("n1", { authorization: `Bearer ${jt.token}` })))).status).toBe(401)
    expect((await both(beat("n1", "n1", {}, as("n1", { authorization: `bearer ${creds.n1}` })))).status).toBe(401)
    expect((await both(beat("n1", "n1", {}, { "content-type": "application/json" }))).status).toBe(401)

    expect((await both(beat("n3"))).status).toBe(200)
    await trust.identity.revoke("n3")
    const revoked = await both(beat("n3"))
    expect(revoked.status).toBe(401)
    expect(revoked.audited).toBe(0)
  })

  test("an answer that looks like it holds a secret is redacted alike; a rotation request shows alike", async () => {
    await fleet.setDesired("n2", SECRETISH)
    const redacted = await both(beat("n2"))
    expect(redacted.status).toBe(200)
    expect(redacted.body).not.toContain("chm_node_A")
    expect(redacted.body).toContain("chm_[redacted]")
    await trust.identity.requestRotation("n2")
    const rotate = await both(beat("n2"))
    expect(JSON.parse(rotate.body).rotateCredential).toBe(true)
  })

  test("command polls, acks and reports answer alike", async () => {
    const poll = (query: string, headers: Record<string, string> = as("n2")): Req => ({
      method: "GET",
      path: `/api/agent/n2/commands${query}`,
      headers,
    })
    const ack = (id: string, body: unknown): Req => ({
      path: `/api/agent/n2/commands/${id}/ack`,
      headers: as("n2"),
      body: JSON.stringify(body),
    })
    const idIn = (x: { body: string }) => (JSON.parse(x.body).commands as { id: string }[])[0]?.id ?? ""
    // A command is delivered once and a newer activation supersedes it: each app polls for and acks
    // one of its own, queued just before.
    const answers = []
    for (const app of [fast, slow]) {
      await fleet.setDesired("n2", SECRETISH)
      const polled = await send(app, poll("?wait=0"))
      const id = idIn(polled)
      expect(id).not.toBe("")
      const invalid = await send(app, ack(id, { success: "yes" }))
      const acked = await send(app, ack(id, { success: true, output: "ok" }))
      answers.push([polled, invalid, acked].map(plain))
    }
    expect(answers[0]).toEqual(answers[1])
    const [polled, invalid, acked] = answers[0] ?? []
    expect(polled?.status).toBe(200)
    // Verbatim: the node runs what the operator sent, secrets included; only its own credential fetches it.
    expect(polled?.body).toContain(SECRETISH)
    expect(invalid?.status).toBe(422)
    expect(acked?.status).toBe(200)
    expect(acked?.audited).toBe(0)

    expect((await both(poll(""))).status).toBe(200)
    expect((await both(poll("?wait=abc"))).status).toBe(422)
    expect((await both(poll("?wait=0&wait=1"))).status).toBe(422)
    expect((await both(poll("?wait=0", as("n1")))).status).toBe(403)
    expect((await both({ ...poll("?wait=0"), method: "HEAD" })).status).toBe(200)
    const unknown = await both(ack("no-such-command", { success: true }))
    expect(unknown.status).toBeGreaterThanOrEqual(400)
    expect(unknown.status).toBeLessThan(500)

    const report = (seq: number) => ({
      seq,
      at: "2026-01-01T12:00:00.000Z",
      type: "reboot.required",
      data: { booted: GEN1, current: GEN1 },
    })
    const reports = (body: unknown): Req => ({
      path: "/api/agent/n2/reports",
      headers: as("n2"),
      body: JSON.stringify(body),
    })
    expect((await both(reports({ reports: [report(1)] }))).status).toBe(200)
    expect((await both(reports({ reports: [] }))).status).toBe(422)
    expect((await both(reports({ reports: [report(2)] }))).body).toBe('{"ackedSeq":2}')
  })

  test("the agent rate limit counts and refuses alike, with the same headers", async () => {
    let last = await both(beat("n4"))
    for (let i = 0; i < AGENT_LIMIT + 2 && last.status === 200; i++) last = await both(beat("n4"))
    expect(last.status).toBe(429)
    expect(last.headers["retry-after"]).toBeDefined()
    expect(last.headers["x-ratelimit-remaining"]).toBe("0")
  })
})
