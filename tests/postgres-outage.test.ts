// Replicas on PostgreSQL while the database itself stops and starts again (a restart, a failover): what
// the operator and the agents are told meanwhile, that a node which kept its heartbeat schedule all
// along is not called unreachable (nor paged about) when the database comes back, and that a deploy
// through an agent waits the outage out rather than dying with it.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { SQL } from "bun"
import { setLogSink } from "../protocol/log.ts"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import {
  freePort,
  spawnControlPlane,
  spawnRemoteDeploy,
  startInProcess,
  type TestControlPlane,
} from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

let pg: TestPostgres

beforeAll(async () => {
  pg = await startPostgres()
})

afterAll(async () => {
  await pg?.stop()
})

/** The node's agent says `closure` is active, as it would once it heard of it as its desired closure. */
async function reportActive(cp: { url: string }, credential: string, nodeId: string, closure: string) {
  const system = { profile: closure, current: closure, booted: closure }
  const beat = await call(cp, credential, "POST", `/api/agent/${nodeId}/heartbeat`, {
    ...heartbeatBody(nodeId),
    system,
    desired: closure,
  })
  expect(beat.status).toBe(200)
}

describe("PostgreSQL stopped and started under two replicas", () => {
  test("PostgreSQL's own words (its role, its address) reach neither the public health answer nor a 503", async () => {
    const url = await pg.database("outage_words")
    // A replica of its own role, which then may no longer log in: PostgreSQL refuses it by name.
    const admin = new SQL(url)
    await admin.unsafe("CREATE ROLE telltale_role LOGIN")
    await admin.unsafe("ALTER DATABASE outage_words OWNER TO telltale_role")
    const own = url.replace("chimera@", "telltale_role@")
    await using cp = await startInProcess({ databaseUrl: own })
    await admin.unsafe("ALTER ROLE telltale_role NOLOGIN")
    await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'telltale_role'`
    await admin.close()
    const health = await waitFor(
      "health to fail",
      async () => (await (await fetch(`${cp.url}/api/health`)).json()) as { status: string; store: string },
      (h) => h.store.includes("credentials"), // after the connections ended (57P01), the refusal
    )
    expect(health.store).toContain("PostgreSQL refused this replica's credentials (SQLSTATE 28000")
    const listed = await call(cp, cp.adminToken, "GET", "/api/nodes")
    expect(listed.status).toBe(503)
    const body = (await listed.json()) as { error: string }
    expect(body.error).toContain("PostgreSQL refused this replica's credentials")
    for (const said of [health.store, body.error]) {
      expect(said).not.toContain("telltale_role")
      expect(said).not.toContain("127.0.0.1")
    }
  })

  test("while it is down, requests answer 503 STORE_UNAVAILABLE naming the database, not a bare 500", async () => {
    const url = await pg.database("outage_errors")
    await using a = await startInProcess({ databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    const credential = await enrollNode(a, "outage-node")
    await pg.halt()
    try {
      for (const cp of [a, b]) {
        const listed = await call(cp, a.adminToken, "GET", "/api/nodes")
        expect(listed.status).toBe(503)
        const body = (await listed.json()) as { error: string; code: string }
        expect(body.code).toBe("STORE_UNAVAILABLE")
        expect(body.error).toContain("cannot reach its database")
        expect(body.error).toContain("CHIMERA_DB")
      }
      // The agent is told the same, and a 5xx moves it to the next replica.
      const beat = await call(b, credential, "POST", "/api/agent/outage-node/heartbeat", heartbeatBody("outage-node"))
      expect(beat.status).toBe(503)
      expect(((await beat.json()) as { code: string }).code).toBe("STORE_UNAVAILABLE")
    } finally {
      await pg.resume()
    }
    expect((await call(a, a.adminToken, "GET", "/api/nodes")).status).toBe(200)
  })

  test("a node that heartbeats on schedule through an outage longer than three intervals is never unreachable, and no incident opens", async () => {
    const url = await pg.database("outage_sweep")
    const incidents = { unreachableAfterMs: 1000 }
    await using a = await startInProcess({ databaseUrl: url, incidents })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken, incidents })
    const credential = await enrollNode(a, "steady-node")
    // Every 2 s, as its agent would, to B; an answer that fails (the database is down) is retried on schedule.
    const intervalMs = 2000
    const body = () => ({ ...heartbeatBody("steady-node"), heartbeatIntervalSeconds: intervalMs / 1000 })
    let beats = 0
    let answered = 0
    let beating = true
    let tried = Promise.withResolvers<void>()
    const loop = (async () => {
      while (beating) {
        const res = await call(b, credential, "POST", "/api/agent/steady-node/heartbeat", body()).catch(() => null)
        if (res?.ok) answered++
        await res?.body?.cancel()
        beats++
        tried.resolve()
        await Bun.sleep(intervalMs)
      }
    })()
    try {
      await tried.promise
      expect(answered).toBe(1)
      await pg.halt()
      // Longer than three intervals: by its last heartbeat taken, the node would count as silent.
      await Bun.sleep(4 * intervalMs)
      // Back right after a heartbeat that failed: the next one comes on schedule, an interval later.
      tried = Promise.withResolvers<void>()
      await tried.promise
      const failedBefore = beats - answered
      await pg.resume()
      expect(failedBefore).toBeGreaterThanOrEqual(3)
      // Two more intervals: the sweeps of both replicas run many times meanwhile.
      const resumedAt = beats
      while (beats < resumedAt + 2) await Bun.sleep(100)
      expect(answered).toBeGreaterThanOrEqual(2)
      const events = (await (
        await call(a, a.adminToken, "GET", "/api/events?node=steady-node&type=node.unreachable")
      ).json()) as { events: unknown[] }
      expect(events.events).toEqual([])
      const node = (await (await call(b, a.adminToken, "GET", "/api/nodes/steady-node")).json()) as { status: string }
      expect(node.status).not.toBe("unreachable")
      for (const status of ["open", "resolved"]) {
        const listed = (await (await call(a, a.adminToken, "GET", `/api/incidents?status=${status}`)).json()) as {
          incidents: unknown[]
        }
        expect(listed.incidents).toEqual([])
      }
    } finally {
      beating = false
      await loop
    }
  })

  test("a deploy through an agent waits through the outage: the node reports the closure afterwards and the deploy is recorded succeeded, read through the other replica", async () => {
    const closure = await buildTestSystem(1, { tag: "outage" })
    const url = await pg.database("outage_deploy")
    // A in a process of its own: replicas in one process share one name, and each would take the
    // other's deploys for its own.
    await using a = await spawnControlPlane(freePort(), { databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    const credential = await enrollNode(a, "deploy-node")
    const started = await call(a, a.adminToken, "POST", "/api/deployments", {
      targets: ["deploy-node"],
      closure,
      confirm_timeout_seconds: 600,
    })
    expect(started.status).toBe(202)
    const { id } = (await started.json()) as { id: string }
    const view = async (cp: { url: string }) =>
      (await (await call(cp, a.adminToken, "GET", `/api/deployments/${id}`)).json()) as {
        status: string
        progress?: Record<string, string>
        reason?: string
      }
    await waitFor(
      "the deploy waiting for the agent",
      () => view(b),
      (d) => Object.keys(d.progress ?? {}).length > 0,
    )
    await pg.halt()
    // Several of the deploy's looks at the node fail meanwhile.
    await Bun.sleep(2000)
    await pg.resume()
    expect(await view(a)).toMatchObject({ status: "running" })
    // The agent activates it, as it would once it heard of the desired closure.
    await reportActive(b, credential, "deploy-node", closure)
    await waitFor(
      "the deploy's record, through B",
      () => view(b),
      (d) => d.status !== "running",
      10_000,
    )
    expect(await view(b)).toMatchObject({ status: "succeeded" })
  })

  test("`deploy --via-control-plane` follows its deploy through the outage and ends with its outcome", async () => {
    const closure = await buildTestSystem(1, { tag: "outage-cli" })
    const url = await pg.database("outage_cli")
    await using a = await spawnControlPlane(freePort(), { databaseUrl: url })
    const credential = await enrollNode(a, "cli-node")
    const cli = spawnRemoteDeploy(a, "cli-node", closure)
    const stderr = new Response(cli.stderr).text()
    await waitFor(
      "the deploy waiting for the agent",
      async () =>
        (await call(a, a.adminToken, "GET", "/api/events?type=deployment.started")).json() as Promise<{
          events: unknown[]
        }>,
      (r) => r.events.length > 0,
    )
    await pg.halt()
    // The CLI's looks at the deploy are answered 503 meanwhile.
    await Bun.sleep(3000)
    await pg.resume()
    await reportActive(a, credential, "cli-node", closure)
    const [out, code] = await Promise.all([new Response(cli.stdout).text(), cli.exited])
    const err = await stderr
    expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" })
    expect(out).toContain("cli-node  deployed")
    // Said on stderr while it waited, without a terminal: the deploy goes on, the CLI waits for it.
    expect(err).toContain("the control plane cannot reach its database; deploy")
    expect(err).toContain("reaches its database again")
  })

  test("a deploy that ends while the database is away keeps its record: it reads running meanwhile and succeeded once the database is back, through either replica", async () => {
    const closure = await buildTestSystem(1, { tag: "outage-save" })
    const url = await pg.database("outage_save")
    await using a = await spawnControlPlane(freePort(), { databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    const credential = await enrollNode(a, "save-node")
    const started = await call(a, a.adminToken, "POST", "/api/deployments", { targets: ["save-node"], closure })
    expect(started.status).toBe(202)
    const { id } = (await started.json()) as { id: string }
    const view = async (cp: { url: string }) =>
      (await (await call(cp, a.adminToken, "GET", `/api/deployments/${id}`)).json()) as { status: string }
    await waitFor(
      "the deploy waiting for the agent",
      () => view(b),
      (d) => d.status === "running",
    )
    // The database goes away at the very moment A saves the record: the save is held on a lock until
    // the server stops, which ends it (and the lock's holder) as a restart ends every session.
    const holder = new SQL(url)
    const probe = new SQL(url)
    const release = Promise.withResolvers<void>()
    const locked = Promise.withResolvers<void>()
    const holding = holder
      .begin(async (tx) => {
        await tx`LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE`
        locked.resolve()
        await release.promise
      })
      .catch(() => {})
    try {
      await locked.promise
      await reportActive(b, credential, "save-node", closure)
      await waitFor(
        "A's save of the record, held on the lock",
        async () =>
          (await probe`SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO deployments%'`) as { n: number }[],
        (rows) => rows[0]?.n === 1,
      )
      await probe.close()
      await pg.halt()
    } finally {
      release.resolve()
      await holding
      await holder.close().catch(() => {})
    }
    await Bun.sleep(2000)
    await pg.resume()
    expect((await view(a)).status).toMatch(/^(running|succeeded)$/)
    await waitFor(
      "the deploy's record, through B",
      () => view(b),
      (d) => d.status !== "running",
      10_000,
    )
    expect(await view(b)).toMatchObject({ status: "succeeded" })
    expect(await view(a)).toMatchObject({ status: "succeeded" })
  })

  type Line = { level: string; module: string; msg: string; failures?: number; error?: { message: string } }
  /** The log lines of one replica's outage of about four seconds, in which `request` runs 40 times, and its end. */
  const outageLines = async (name: string, request: (cp: TestControlPlane) => Promise<Response>) => {
    const url = await pg.database(name)
    await using a = await startInProcess({ databaseUrl: url })
    const lines: Line[] = []
    setLogSink((l) => lines.push(JSON.parse(l)))
    try {
      await pg.halt()
      try {
        for (let i = 0; i < 40; i++) {
          expect((await request(a)).status).toBe(503)
          await Bun.sleep(100)
        }
      } finally {
        await pg.resume()
      }
      const during = [...lines]
      expect((await request(a)).status).toBe(200)
      // The outbox worker looks once a second when idle.
      await Bun.sleep(1500)
      return { during, after: lines.slice(during.length) }
    } finally {
      setLogSink((l) => process.stderr.write(`${l}\n`))
    }
  }
  /** Each error once (a server shutting down, then refusing connections, is two), not a line each time. */
  const eachOnce = (lines: Line[]) => {
    expect(lines.length).toBeGreaterThanOrEqual(1)
    expect(lines.length).toBe(new Set(lines.map((l) => l.error?.message)).size)
  }

  test("the outbox worker logs an outage once, not at each look, and once when the database is back", async () => {
    const { during, after } = await outageLines("outage_outbox_log", (cp) =>
      call(cp, cp.adminToken, "GET", "/api/nodes"),
    )
    eachOnce(during.filter((l) => l.module === "delivery" && l.msg === "reading the outbox failed"))
    const back = after.filter((l) => l.module === "delivery" && l.msg === "recovered from: reading the outbox failed")
    expect(back).toHaveLength(1)
    expect(back[0]?.failures).toBeGreaterThanOrEqual(3)
  })

  test("the API logs an outage once, not for each request answered 503, and once with their count when the database is back", async () => {
    const { during, after } = await outageLines("outage_api_log", (cp) => call(cp, cp.adminToken, "GET", "/api/nodes"))
    eachOnce(during.filter((l) => l.module === "api" && l.msg.startsWith("the database cannot be reached")))
    const back = after.filter((l) => l.module === "api" && l.msg.startsWith("recovered from: "))
    expect(back).toHaveLength(1)
    expect(back[0]?.failures).toBe(40)
  })
})
