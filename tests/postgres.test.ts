// The control plane on PostgreSQL (CHIMERA_DB=postgres://…, for several replicas): the same store,
// migrations and use cases as on SQLite, against a real server started here on loopback.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { SQL } from "bun"
import { openCliStore } from "../control/cli/cli-store.ts"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "./support/agent-process.ts"
import { addUser, call, enrollNode, healFailedReport, heartbeatBody, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { cliRecord } from "./support/deployment-record.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { createTestNode, waitForSystem } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(60_000)

let pg: TestPostgres
let gen1: StorePath
let gen2: StorePath

beforeAll(async () => {
  pg = await startPostgres()
  ;[gen1, gen2] = (await Promise.all([1, 2].map((g) => buildTestSystem(g, { tag: "pg" })))) as [StorePath, StorePath]
})

afterAll(async () => {
  await pg?.stop()
})

describe("PostgreSQL", () => {
  test("the core loop: enrolment, a manual switch healed, events in order, status healthy", async () => {
    await using cp = await startInProcess({ databaseUrl: await pg.database("core_loop") })
    const { token } = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    await using node = await createTestNode({ name: "pg-node", boot: gen1 })
    await using agent = startAgent(node, { nodeId: "pg-node", controlUrl: cp.url, joinToken: token })
    await waitFor(
      "enrolment",
      async () => (await cp.api("/api/nodes/pg-node")).status,
      (s) => s === 200,
    )
    await cp.api("/api/nodes/pg-node/desired", { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
    const status = async () => ((await (await cp.api("/api/nodes/pg-node")).json()) as { status: string }).status
    await waitFor("healthy", status, (s) => s === "healthy").catch((e: Error) => {
      throw new Error(`${e.message}\n${agent.log()}`)
    })

    await node.switchTo(gen2)
    await waitForSystem(node, gen1, "healed", 10_000)
    const types = async () =>
      (
        (await (await cp.api("/api/events?node=pg-node&type=drift.detected,heal.started,heal.succeeded")).json()) as {
          events: { type: string; data: { seq: number } }[]
        }
      ).events
    const events = await waitFor("heal events", types, (es) => es.some((e) => e.type === "heal.succeeded"))
    expect(events.map((e) => e.type)).toEqual(["drift.detected", "heal.started", "heal.succeeded"])
    expect(events.map((e) => e.data.seq)).toEqual([...events.map((e) => e.data.seq)].sort((a, b) => a - b))
    await waitFor("healthy again", status, (s) => s === "healthy")
  })

  test("event and audit cursors past what a BIGINT holds are refused or ignored, never a 500", async () => {
    await using cp = await startInProcess({ databaseUrl: await pg.database("huge_cursor") })
    for (const path of ["/api/events?after=99999999999999999999", "/api/audit?after=99999999999999999999"]) {
      const res = await cp.api(path)
      expect({ path, status: res.status }).toEqual({ path, status: 422 })
    }
    const leave = new AbortController()
    const stream = await fetch(`${cp.url}/api/events/stream`, {
      headers: { authorization: `Bearer ${cp.adminToken}`, "last-event-id": "99999999999999999999" },
      signal: leave.signal,
    })
    expect(stream.status).toBe(200)
    const reader = stream.body?.getReader()
    const first = new TextDecoder().decode((await reader?.read())?.value)
    expect(first).toContain("event: ready")
    leave.abort()
  })

  test("a NUL in a node's output or error is stored as U+FFFD: the ack and the incident are not refused", async () => {
    await using cp = await startInProcess({ databaseUrl: await pg.database("nul_text") })
    const credential = await enrollNode(cp, "nul-1")
    const agent = (method: string, path: string, body?: unknown) =>
      call(cp, credential, method, `/api/agent/nul-1/${path}`, body)
    expect((await agent("POST", "heartbeat", heartbeatBody("nul-1"))).status).toBe(200)
    expect(
      (await cp.api("/api/nodes/nul-1/desired", { method: "PUT", body: JSON.stringify({ closure: gen1 }) })).status,
    ).toBe(200)
    const { commands } = (await (await agent("GET", "commands?wait=0")).json()) as { commands: { id: string }[] }
    const id = commands[0]?.id ?? ""
    // What `cat /proc/1/cmdline` prints: arguments separated by NUL.
    const ack = await agent("POST", `commands/${id}/ack`, { success: false, output: "init\u0000--switch\u0000" })
    expect(ack.status).toBe(200)
    const shown = (await (await cp.api("/api/nodes/nul-1/commands")).json()) as {
      commands: { id: string; output: string }[]
    }
    expect(shown.commands.find((c) => c.id === id)?.output).toBe("init\uFFFD--switch\uFFFD")

    const report = {
      seq: 1,
      at: new Date().toISOString(),
      type: "heal.failed",
      data: { desired: gen1, attempt: 1, durationMs: 5, error: "bad\u0000byte", output: "", retryInMs: null },
    }
    expect((await agent("POST", "reports", { reports: [report] })).status).toBe(200)
    const incidents = await waitFor(
      "the heal's incident",
      async () =>
        ((await (await cp.api("/api/incidents?node=nul-1")).json()) as { incidents: { message: string }[] }).incidents,
      (list) => list.length > 0,
    )
    expect(incidents.map((i) => i.message)).toEqual(["heal attempt 1 failed: bad\uFFFDbyte"])
  })

  test("a NUL in a request's path costs it neither its audit row nor its answer: stored as U+FFFD", async () => {
    await using cp = await startInProcess({ databaseUrl: await pg.database("nul_audit") })
    // Refused before any action: the knock is in the audit log, and so is the action the path refuses.
    expect((await call(cp, null, "POST", "/api/nodes/b%00/revoke")).status).toBe(401)
    expect((await call(cp, cp.adminToken, "POST", "/api/nodes/a%00/revoke")).status).toBe(422)
    const { entries } = (await (await cp.api("/api/audit?action=POST%20/api/nodes/:id/revoke")).json()) as {
      entries: { actor: string; path: string; status: number }[]
    }
    expect(entries.map((e) => [e.actor, e.path, e.status])).toEqual([
      ["anonymous", "/api/nodes/b\uFFFD/revoke", 401],
      ["bootstrap admin", "/api/nodes/a\uFFFD/revoke", 422],
    ])
    // An exec the CLI reports, on a target whose name holds one: its row is kept too.
    const exec = { operation: "exec", entries: [{ target: "c\u0000", command: "uptime\u0000", ok: true }] }
    expect((await call(cp, cp.adminToken, "POST", "/api/operations/records", exec)).status).toBe(201)
    const runs = (await (await cp.api("/api/audit?action=command.run")).json()) as {
      entries: { path: string; nodeId: string; command: string }[]
    }
    expect(runs.entries.map((e) => [e.path, e.nodeId, e.command])).toEqual([
      ["node:c\uFFFD", "c\uFFFD", "uptime\uFFFD"],
    ])
  })

  test("a NUL in a query, path or body value is a 422 naming it, never the store's 500", async () => {
    await using cp = await startInProcess({ databaseUrl: await pg.database("nul_request") })
    await addUser(cp, "nul-viewer", "viewer")
    const viewer = await login(cp, "nul-viewer")
    const credential = await enrollNode(cp, "nul-2")
    const report = await call(cp, credential, "POST", "/api/agent/nul-2/reports", { reports: [healFailedReport(1)] })
    expect(report.status).toBe(200)
    const [incident] = await waitFor(
      "the heal's incident",
      async () =>
        ((await (await cp.api("/api/incidents?node=nul-2")).json()) as { incidents: { id: string }[] }).incidents,
      (list) => list.length > 0,
    )
    const asked: [string, string, string, unknown?][] = [
      [viewer, "GET", "/api/incidents?node=a%00"],
      [cp.adminToken, "GET", "/api/audit?actor=a%00"],
      [viewer, "POST", "/api/auth/revoke", { jti: "a\u0000" }],
      [cp.adminToken, "POST", `/api/incidents/${incident?.id}/resolve`, { note: "a\u0000b" }],
      [cp.adminToken, "DELETE", "/api/tokens/a%00"],
    ]
    for (const [token, method, path, body] of asked) {
      const res = await call(cp, token, method, path, body)
      const answer = (await res.json()) as { error: string }
      expect({ path, status: res.status, nul: answer.error.includes("NUL") }).toEqual({ path, status: 422, nul: true })
    }
  })

  test("a reported deployment's NUL: in a target it is a 422, in an error U+FFFD, and the failed target's incident opens", async () => {
    await using cp = await startInProcess({ databaseUrl: await pg.database("nul_record") })
    await enrollNode(cp, "nul-3")
    const named = cliRecord("20261122000000-0000aaaa", gen1, [{ target: "x\u0000", status: "failed" }])
    const refused = await call(cp, cp.adminToken, "POST", "/api/deployments/records", named)
    expect(refused.status).toBe(422)
    expect(((await refused.json()) as { error: string }).error).toContain("NUL")
    const record = cliRecord("20261122000000-0000bbbb", gen1, [
      { target: "nul-3", status: "failed", error: "activate: bad\u0000byte", log: ["a\u0000b"] },
    ])
    expect((await call(cp, cp.adminToken, "POST", "/api/deployments/records", record)).status).toBe(201)
    const incidents = await waitFor(
      "the failed target's incident",
      async () =>
        ((await (await cp.api("/api/incidents?node=nul-3")).json()) as { incidents: { message: string }[] }).incidents,
      (list) => list.length > 0,
    )
    expect(incidents.map((i) => i.message)).toEqual([
      "deploy failed (reported deployment 20261122000000-0000bbbb): activate: bad\uFFFDbyte",
    ])
  })

  test("deployment records and the append-only audit log", async () => {
    const url = await pg.database("records")
    await using cp = await startInProcess({ databaseUrl: url })
    await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
    // The CLI records through the control plane's API; it never opens the database itself.
    const store = await openCliStore({
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
      CHIMERA_DB: "postgres://nobody@127.0.0.1:1/none",
    })
    expect(store.where).toBe(cp.url)
    const record = {
      id: "20261122000000-abcdef01",
      kind: "deploy",
      createdAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      configPath: "web.nix",
      closure: gen2,
      hash: gen2.slice(11, 43),
      isSystem: true,
      command: null,
      session: "chimera-deploy",
      status: "succeeded",
      targets: [
        {
          target: "web-1",
          status: "deployed",
          before: null,
          copy: { missingPaths: 1, narBytes: 1024 },
          previous: { generation: 1, path: gen2 },
          error: null,
          timings: [],
          startedAt: new Date().toISOString(),
          ms: 5,
          log: [],
        },
      ],
    } satisfies DeploymentRecord
    await store.saveDeployment(record)
    expect(await store.getDeployment(record.id)).toEqual(record)
    expect((await store.listDeployments(10)).map((r) => r.id)).toEqual([record.id])
    await store.close()

    const db = new SQL(url)
    try {
      const rows = (await db`SELECT count(*)::int AS n FROM audit_log`) as { n: number }[]
      expect(rows[0]?.n).toBeGreaterThan(0)
      await expect(db`UPDATE audit_log SET actor = 'someone else'`).rejects.toThrow("append-only")
      await expect(db`DELETE FROM audit_log`).rejects.toThrow("append-only")
      await expect(db`TRUNCATE audit_log`).rejects.toThrow("append-only")
      const after = (await db`SELECT count(*)::int AS n FROM audit_log WHERE actor <> 'someone else'`) as {
        n: number
      }[]
      expect(after[0]?.n).toBe(rows[0]?.n)
    } finally {
      await db.close()
    }
  })

  test("two replicas: a command relayed on one reaches the agent on the other, and its answer comes back", async () => {
    const url = await pg.database("replicas")
    await using a = await startInProcess({ databaseUrl: url })
    // The bootstrap admin token is the first replica's; B's data dir has none, and B takes A's.
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    const credential = await enrollNode(b, "pg-relay")
    expect((await call(a, credential, "POST", "/api/agent/pg-relay/heartbeat", heartbeatBody("pg-relay"))).status).toBe(
      200,
    )
    const t0 = performance.now()
    const pending = call(b, b.adminToken, "POST", "/api/fleet/run", {
      command: "true",
      nodes: ["pg-relay"],
      timeout: 20,
    })
    // The agent asks replica A (without waiting): the command B queued is there.
    const [command] = await waitFor(
      "the command on replica A",
      async () =>
        (
          (await (await call(a, credential, "GET", "/api/agent/pg-relay/commands?wait=0")).json()) as {
            commands: { id: string; kind: string }[]
          }
        ).commands,
      (cs) => cs.length === 1,
    )
    expect(command?.kind).toBe("run")
    const ack = await call(a, credential, "POST", `/api/agent/pg-relay/commands/${command?.id}/ack`, {
      success: true,
      output: "from A\n",
      exitCode: 0,
      stderr: "",
      timedOut: false,
    })
    expect(ack.status).toBe(200)
    // B learns of the ack from A's notification (or its poll fallback), long before the 20 s timeout.
    const answer = (await (await pending).json()) as { results: { status: string; stdout: string }[] }
    expect(answer.results).toMatchObject([{ status: "ok", stdout: "from A\n" }])
    expect(performance.now() - t0).toBeLessThan(10_000)
  })
})
