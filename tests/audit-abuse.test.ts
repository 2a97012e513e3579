// The audit log under an outside attack. Refused requests (no credential, a made-up join token, 429s)
// are counted and summarised, one row for the first of a window per source and route and one summary
// for the rest, so a flood cannot grow the append-only log; enrolment is rate limited per address; a
// row keeps a bounded summary of the body, never the body. And auditing fails closed: with the audit
// table refusing writes (a trigger standing in for a full disk), a mutating action answers 503
// AUDIT_UNAVAILABLE and does nothing.
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { DEFAULT_LIMITS } from "../control/domain/auth/rate-limiter.ts"
import { addUser, call, enrollNode, heartbeatBody, login, PASSWORD } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { claimAddresses } from "./support/loopback.ts"
import { requestFrom } from "./support/source-address.ts"

const ENROLL = "/api/agent/enroll"
const PAD = "x".repeat(15 * 1024)

function openDb(cp: TestControlPlane) {
  return new Database(join(cp.dataDir, "chimera.db"))
}
/** Rows of the audit log and the bytes they hold, read from the database itself. */
function auditSize(db: Database) {
  const row = db
    .query(
      `SELECT count(*) AS n, COALESCE(sum(length(actor) + length(path) + length(action) + COALESCE(length(detail), 0)
         + COALESCE(length(command), 0) + length(request_id)), 0) AS bytes FROM audit_log`,
    )
    .get() as { n: number; bytes: number }
  return row
}

type Entry = { actor: string; source: string; action: string; status: number; result: string; detail: unknown }
async function auditEntries(cp: TestControlPlane, query = "") {
  const res = await call(cp, cp.adminToken, "GET", `/api/audit?limit=10000${query}`)
  return ((await res.json()) as { entries: Entry[] }).entries
}

describe("refused requests and the audit log", () => {
  test("an unauthenticated enrolment flood is rate limited per address and leaves a row per address and one summary, not a row per request", async () => {
    const clock = manualClock(Date.parse("2025-03-01T10:00:00Z"))
    await using cp = await startInProcess({ clock, trust: { rateLimits: DEFAULT_LIMITS } })
    const [flooder, bystander] = claimAddresses(2)
    try {
      const db = openDb(cp)
      const before = auditSize(db)
      const statuses: number[] = []
      for (let i = 0; i < 60; i++) {
        const res = await requestFrom(flooder!.address, cp.url, ENROLL, {
          token: `chm_join_madeup${i}`,
          body: { nodeId: `n${i}`, hostname: "h", agentVersion: "1", pad: PAD },
        })
        statuses.push(res.status)
      }
      // The address's enrolment budget, then 429s.
      expect(statuses.slice(0, DEFAULT_LIMITS.enroll.limit).every((s) => s === 401)).toBe(true)
      expect(statuses.slice(DEFAULT_LIMITS.enroll.limit).every((s) => s === 429)).toBe(true)
      // Another address has its own budget.
      const other = await requestFrom(bystander!.address, cp.url, ENROLL, {
        token: "chm_join_madeup",
        body: { nodeId: "b", hostname: "h", agentVersion: "1" },
      })
      expect(other.status).toBe(401)

      // Counted, every one.
      expect(cp.refusals?.counts().byRoute[`POST ${ENROLL}`]).toBe(61)
      expect(cp.refusals?.counts().byResult).toMatchObject({ denied: 21, "rate-limited": 40 })

      // While the window runs: one row per source address, each small.
      const during = auditSize(db)
      expect(during.n - before.n).toBe(2)
      expect(during.bytes - before.bytes).toBeLessThan(2 * 600)

      // When the window ends, one summary per source that was refused more than once.
      clock.advance(61_000)
      await cp.refusals?.flush()
      const rows = (await auditEntries(cp)).filter((e) => e.action === `POST ${ENROLL}`)
      const summaries = rows.filter((e) => (e.detail as { summary?: string } | null)?.summary !== undefined)
      expect(summaries.map((e) => [e.source, e.detail])).toEqual([
        [
          flooder!.address,
          {
            summary: expect.stringContaining(`60 refused requests from ${flooder!.address} to POST ${ENROLL} in 1 min`),
            refused: 60,
            statuses: { "401": 20, "429": 40 },
          },
        ],
      ])
      const after = auditSize(db)
      expect(after.n - before.n).toBe(3)
      // Before, each refused request was a row holding up to 16 KiB of its body: 60 of them, ~250 KB.
      expect(after.bytes - before.bytes).toBeLessThan(3 * 600)
      expect(JSON.stringify(rows)).not.toContain("xxxxxxxx")
      db.close()
    } finally {
      for (const c of [flooder, bystander]) c?.release()
    }
  })

  test("knocking on reads and on agent telemetry leaves a trace: a made-up token, a node at another node's door", async () => {
    const clock = manualClock(Date.parse("2025-03-01T10:00:00Z"))
    await using cp = await startInProcess({ clock })
    const credential = await enrollNode(cp, "tel-1")
    await enrollNode(cp, "tel-2")
    const made = `chm_api_${"Q".repeat(43)}`
    for (let i = 0; i < 5; i++) expect((await call(cp, made, "GET", "/api/nodes")).status).toBe(401)
    // Over the server's fetch, as an agent sends it: the agent fast path answers these.
    for (let i = 0; i < 3; i++)
      expect((await call(cp, credential, "POST", "/api/agent/tel-2/heartbeat", heartbeatBody("tel-2"))).status).toBe(
        403,
      )
    expect((await call(cp, credential, "GET", "/api/agent/tel-2/commands?wait=0")).status).toBe(403)
    // What is not a refusal of the caller stays out of the log: a good heartbeat, a read of no such node.
    expect((await call(cp, credential, "POST", "/api/agent/tel-1/heartbeat", heartbeatBody("tel-1"))).status).toBe(200)
    expect((await call(cp, cp.adminToken, "GET", "/api/nodes/nope")).status).toBe(404)

    expect(cp.refusals?.counts().byRoute).toMatchObject({
      "GET /api/nodes": 5,
      "POST /api/agent/:nodeId/heartbeat": 3,
      "GET /api/agent/:nodeId/commands": 1,
    })
    const shown = (e: Entry) => [e.actor, e.action, e.status, (e.detail as { code?: string } | null)?.code]
    expect((await auditEntries(cp)).filter((e) => e.status >= 400).map(shown)).toEqual([
      ["anonymous", "GET /api/nodes", 401, "AUTHENTICATION_FAILED"],
      ["node:tel-1", "POST /api/agent/:nodeId/heartbeat", 403, "PERMISSION_DENIED"],
      ["node:tel-1", "GET /api/agent/:nodeId/commands", 403, "PERMISSION_DENIED"],
    ])
    clock.advance(61_000)
    await cp.refusals?.flush()
    const summaries = (await auditEntries(cp)).filter((e) => (e.detail as { summary?: string } | null)?.summary)
    expect(summaries.map((e) => [e.actor, e.action, (e.detail as { refused: number }).refused])).toEqual([
      ["anonymous", "GET /api/nodes", 5],
      ["node:tel-1", "POST /api/agent/:nodeId/heartbeat", 3],
    ])
  })

  test("the audit rows an operator's CLI reports are rate limited by rows; a deployment record names a target once", async () => {
    await using cp = await startInProcess({ trust: { rateLimits: { records: DEFAULT_LIMITS.records } } })
    await addUser(cp, "olga", "operator")
    const olga = await login(cp, "olga")
    const entries = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ target: `n${i}`, command: "uptime", ok: true }))
    const db = openDb(cp)
    const before = auditSize(db).n
    const statuses: number[] = []
    for (let i = 0; i < 3; i++)
      statuses.push(
        (await call(cp, olga, "POST", "/api/operations/records", { operation: "exec", entries: entries(1000) })).status,
      )
    // 2,000 rows a minute: two reports of 1,000, then a 429 that says when to come back.
    expect(statuses).toEqual([201, 201, 429])
    const third = await call(cp, olga, "POST", "/api/operations/records", { operation: "exec", entries: entries(1) })
    expect(third.status).toBe(429)
    expect(third.headers.get("retry-after")).not.toBeNull()
    // Each report's rows and its own audit row; the refused ones wrote none of their rows.
    expect(auditSize(db).n - before).toBeLessThan(2000 + 10)
    expect(auditSize(db).n - before).toBeGreaterThanOrEqual(2000)
    db.close()

    const target = { target: "n1", status: "failed", before: null, copy: null, previous: null, error: "E" }
    const more = { timings: [], startedAt: new Date().toISOString(), ms: 1, log: [] }
    const at = new Date().toISOString()
    const record = await call(cp, cp.adminToken, "POST", "/api/deployments/records", {
      id: "twice-1",
      kind: "deploy",
      createdAt: at,
      finishedAt: at,
      configPath: "/etc/x.nix",
      closure: "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1",
      hash: "yqjaw21d05si79hnrp0rfzyhb7403rdm",
      isSystem: true,
      command: null,
      session: "s",
      status: "failed",
      targets: [
        { ...target, ...more },
        { ...target, ...more, status: "deployed", error: null },
      ],
    })
    expect(record.status).toBe(422)
    expect(((await record.json()) as { error: string }).error).toContain("each target at most once")
  })

  test("a deployment record counts against the records limit by its size as well as its targets", async () => {
    await using cp = await startInProcess({ trust: { rateLimits: { records: DEFAULT_LIMITS.records } } })
    await addUser(cp, "olga", "operator")
    const olga = await login(cp, "olga")
    const at = new Date().toISOString()
    // 800 KB each, all of it one target's log: kept for good, as many bytes as 50 rows of the limit.
    const log = Array.from({ length: 200 }, () => "x".repeat(4000))
    const statuses: number[] = []
    for (let i = 0; i < 45; i++)
      statuses.push(
        (
          await call(cp, olga, "POST", "/api/deployments/records", {
            id: `long-log-${i}`,
            kind: "deploy",
            createdAt: at,
            finishedAt: at,
            configPath: "/etc/x.nix",
            closure: "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1",
            hash: "yqjaw21d05si79hnrp0rfzyhb7403rdm",
            isSystem: true,
            command: null,
            session: "s",
            status: "succeeded",
            targets: [{ target: "n1", status: "deployed", before: null, copy: null, previous: null, error: null }].map(
              (t) => ({ ...t, timings: [], startedAt: at, ms: 1, log }),
            ),
          })
        ).status,
      )
    // 2,000 rows a minute hold 40 of them (31 MB), not all 45 (or the 300 a minute the api limit allows).
    expect(statuses.filter((s) => s === 201)).toHaveLength(40)
    expect(statuses.slice(40)).toEqual([429, 429, 429, 429, 429])
  })

  test("a chunked request's row names its source address as one with a Content-Length does", async () => {
    await using cp = await startInProcess()
    const json = JSON.stringify({ name: "chunked", role: "viewer" })
    const headers = { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(json))
        controller.close()
      },
    })
    expect((await fetch(`${cp.url}/api/tokens`, { method: "POST", headers, body })).status).toBe(201)
    expect((await fetch(`${cp.url}/api/tokens`, { method: "POST", headers, body: json })).status).toBe(201)
    const rows = await auditEntries(cp, `&action=${encodeURIComponent("POST /api/tokens")}`)
    expect(rows.map((r) => r.source)).toEqual(["127.0.0.1", "127.0.0.1"])
  })

  test("a row keeps a bounded summary of the body, not the body", async () => {
    await using cp = await startInProcess()
    const fields = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`field${i}`, PAD.slice(0, 400)]))
    const res = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "ci", role: "viewer", ...fields })
    expect(res.status).toBe(422)
    const [row] = await auditEntries(cp, `&action=${encodeURIComponent("POST /api/tokens")}`)
    expect(row?.result).toBe("failed")
    const stored = JSON.stringify(row?.detail)
    expect(stored.length).toBeLessThan(1024)
    expect(row?.detail).toMatchObject({ name: "ci", role: "viewer", "…": "24 more fields" })
  })

  test("a body padded past the summary's size, or sent chunked, still has its command in the row", async () => {
    await using cp = await startInProcess()
    const json = JSON.stringify({ command: "echo audit-evasion-marker", nodes: ["n1"], timeout: 5 })
    const headers = { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" }
    const padded = await fetch(`${cp.url}/api/fleet/run`, { method: "POST", headers, body: json + " ".repeat(17_000) })
    const chunks = new TextEncoder().encode(json)
    const chunked = await fetch(`${cp.url}/api/fleet/run`, {
      method: "POST",
      headers,
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(chunks.slice(0, 10))
          controller.enqueue(chunks.slice(10))
          controller.close()
        },
      }),
    })
    // Whatever came of the relay (here: no such node), each request's row was written before it ran.
    expect([padded.status, chunked.status].every((s) => s < 500)).toBe(true)
    const rows = (await auditEntries(cp, `&action=${encodeURIComponent("POST /api/fleet/run")}`)) as (Entry & {
      command: string | null
    })[]
    expect(rows.map((r) => r.command)).toEqual(["echo audit-evasion-marker", "echo audit-evasion-marker"])
  })

  test("the flood's summary names the usernames a login flood tried, shaped ones only", async () => {
    const clock = manualClock(Date.parse("2025-03-01T10:00:00Z"))
    await using cp = await startInProcess({ clock })
    await addUser(cp, "carol", "viewer")
    for (const username of ["carol", "dave", "carol", "hunter2 is my password"])
      expect((await call(cp, null, "POST", "/api/auth/login", { username, password: "wrong-password" })).status).toBe(
        401,
      )
    clock.advance(61_000)
    await cp.refusals?.flush()
    const rows = await auditEntries(cp, `&action=${encodeURIComponent("POST /api/auth/login")}`)
    expect(rows.map((e) => e.actor)).toEqual(["login:carol", "login:carol"]) // the first one's, then the summary's
    expect(rows[1]?.detail).toMatchObject({ refused: 4, usernames: ["carol", "dave", "[not a username]"] })
    expect(JSON.stringify(rows)).not.toContain("hunter2")
  })
})

describe("auditing fails closed", () => {
  test("when the audit row cannot be written, the action is not performed: 503 AUDIT_UNAVAILABLE, no token", async () => {
    await using cp = await startInProcess()
    await addUser(cp, "erin", "admin")
    const db = openDb(cp)
    const count = (table: string) => (db.query(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n
    const tokensBefore = count("join_tokens")
    const apiTokensBefore = count("api_tokens")
    const sessionsBefore = count("auth_sessions")
    // What a full disk does to the audit table's inserts, and only to them.
    db.run(
      "CREATE TRIGGER audit_log_full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
    )

    const join = await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId: "n1" })
    expect(join.status).toBe(503)
    const body = (await join.json()) as { code: string; error: string }
    expect(body.code).toBe("AUDIT_UNAVAILABLE")
    expect(body.error).toContain("audit log cannot be written")
    expect(body.error).toContain("nothing was done")
    expect(count("join_tokens")).toBe(tokensBefore)

    expect((await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "ci", role: "viewer" })).status).toBe(503)
    expect(count("api_tokens")).toBe(apiTokensBefore)
    // A right password is not a session while the login cannot be recorded.
    const login = await call(cp, null, "POST", "/api/auth/login", { username: "erin", password: PASSWORD })
    expect(login.status).toBe(503)
    expect(count("auth_sessions")).toBe(sessionsBefore)

    // Once the store takes writes again, so does the control plane, and the row says what happened.
    db.run("DROP TRIGGER audit_log_full")
    const again = await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId: "n1" })
    expect(again.status).toBe(201)
    expect(count("join_tokens")).toBe(tokensBefore + 1)
    const rows = await auditEntries(cp, `&action=${encodeURIComponent("POST /api/nodes/join-tokens")}`)
    expect(rows.map((e) => [e.status, e.result])).toEqual([[201, "ok"]])
    db.close()
  })

  test("a row is written before its action: an action that never reports stays `started`", async () => {
    await using cp = await startInProcess()
    const db = openDb(cp)
    // The outcome cannot be appended (as if the process died mid-action): the row is still there.
    db.run(
      "CREATE TRIGGER outcome_lost BEFORE INSERT ON audit_outcomes BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    )
    const res = await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId: "n2" })
    expect(res.status).toBe(201)
    const rows = await auditEntries(cp, `&action=${encodeURIComponent("POST /api/nodes/join-tokens")}`)
    expect(rows.map((e) => [e.actor, e.status, e.result])).toEqual([["bootstrap admin", 0, "started"]])
    db.close()
  })
})
