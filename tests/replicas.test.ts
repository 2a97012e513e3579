// Control-plane replicas on one real PostgreSQL database acting as one: started together on an empty
// database they all come up and share one identity (the admin token, logins, API tokens); what is
// done through one reaches agents and event streams held by another (LISTEN/NOTIFY), within the
// product's contract (a desired closure active within 1 s while the agent polls the other replica).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { existsSync } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { SQL } from "bun"
import { spreadOrder } from "../agent/replicas.ts"
import { CHANNEL } from "../control/adapters/replica-link.ts"
import { DEFAULT_LIMITS } from "../control/domain/auth/rate-limiter.ts"
import { newToken } from "../control/domain/tokens.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "./support/agent-process.ts"
import { call, enrollNode, login, PASSWORD } from "./support/auth.ts"
import {
  freePort,
  type SpawnedControlPlane,
  spawnControlPlane,
  spawnRemoteDeploy,
  startInProcess,
} from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { streamText } from "./support/stream.ts"
import { createTestNode } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

let pg: TestPostgres
let gen1: StorePath
let gen2: StorePath

beforeAll(async () => {
  pg = await startPostgres()
  ;[gen1, gen2] = (await Promise.all([1, 2].map((g) => buildTestSystem(g, { tag: "replicas" })))) as [
    StorePath,
    StorePath,
  ]
})

afterAll(async () => {
  await pg?.stop()
})

/** The heartbeats a replica has answered, from its own request metrics. */
async function heartbeatsAnswered(cp: SpawnedControlPlane, token: string): Promise<number> {
  const text = await (await call(cp, token, "GET", "/metrics")).text()
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("chimera_http_requests_total{") &&
        l.includes('route="/api/agent/:nodeId/heartbeat"') &&
        l.includes('status="200"'),
    )
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0
}

/** Replicas started at once on `url`, each with its own data dir; the admin token is the one whose dir has it. */
async function startTogether(url: string, n: number): Promise<{ replicas: SpawnedControlPlane[]; token: string }> {
  const started = await Promise.allSettled(
    Array.from({ length: n }, () => spawnControlPlane(freePort(), { databaseUrl: url })),
  )
  const replicas = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []))
  const failed = started.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []))
  if (failed.length > 0) {
    await Promise.all(replicas.map((r) => r.stop()))
    throw new Error(`${failed.length} of ${n} replicas did not start:\n${failed.join("\n")}`)
  }
  const holders = replicas.filter((r) => existsSync(join(r.dataDir, "admin.token")))
  expect(holders).toHaveLength(1)
  return { replicas, token: holders[0]?.adminToken ?? "" }
}

/** Reads `stream` until `text` shows up, or fails after `ms` saying what was awaited. */
async function untilShown(stream: ReturnType<typeof streamText>, text: string, ms = 15_000) {
  const timeout = Bun.sleep(ms).then(() => {
    throw new Error(`timed out after ${ms} ms waiting for ${text} on the stream; got:\n${stream.text}`)
  })
  await Promise.race([stream.until((t) => t.includes(text)), timeout])
}

describe("replicas on PostgreSQL", () => {
  test("three replicas started at once on an empty database all come up, with one admin token for all", async () => {
    const { replicas, token } = await startTogether(await pg.database("together"), 3)
    try {
      for (const r of replicas) expect((await call(r, token, "GET", "/api/nodes")).status).toBe(200)
      // A token in a data dir that is not the fleet's is left unused: it opens nothing.
      const stray = replicas.find((r) => r.adminToken === "")
      expect(stray).toBeDefined()
    } finally {
      await Promise.all(replicas.map((r) => r.stop()))
    }
  })

  test("a login and an API token made through one replica work on the other; a later replica revokes nothing", async () => {
    const url = await pg.database("identity")
    await using a = await startInProcess({ databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    expect(existsSync(join(b.dataDir, "admin.token"))).toBe(false)
    expect((await call(b, a.adminToken, "GET", "/api/nodes")).status).toBe(200)

    expect(
      (await call(a, a.adminToken, "POST", "/api/users", { username: "erin", password: PASSWORD, role: "operator" }))
        .status,
    ).toBe(201)
    const session = await login(a, "erin")
    expect((await call(b, session, "GET", "/api/nodes")).status).toBe(200)
    // Refreshed through B (signed with B's key), the new session works on A.
    const refreshed = await call(b, session, "POST", "/api/auth/refresh")
    expect(refreshed.status).toBe(200)
    const next = ((await refreshed.json()) as { token: string }).token
    expect((await call(a, next, "GET", "/api/nodes")).status).toBe(200)
    // Revoked through A, it is refused by B at once.
    expect((await call(a, next, "POST", "/api/auth/revoke", {})).status).toBe(200)
    expect((await call(b, next, "GET", "/api/nodes")).status).toBe(401)

    const made = await call(b, a.adminToken, "POST", "/api/tokens", { name: "ci", role: "viewer" })
    expect(made.status).toBe(201)
    const apiToken = ((await made.json()) as { token: string }).token
    expect((await call(a, apiToken, "GET", "/api/nodes")).status).toBe(200)

    // A third replica whose data dir holds an admin token of its own (say, from a standalone start)
    // does not install it: the fleet's token keeps working and the stray one opens nothing.
    const strayDir = join(b.dataDir, "stray")
    const stray = newToken("admin")
    await mkdir(strayDir, { recursive: true, mode: 0o700 })
    await writeFile(join(strayDir, "admin.token"), `${stray}\n`, { mode: 0o600 })
    await using c = await startInProcess({ databaseUrl: url, dataDir: strayDir, adminToken: a.adminToken })
    expect((await call(c, stray, "GET", "/api/nodes")).status).toBe(401)
    for (const r of [a, b, c]) expect((await call(r, a.adminToken, "GET", "/api/nodes")).status).toBe(200)
    // The replaced session stays refused everywhere; a login through C works on A.
    expect((await call(c, session, "GET", "/api/nodes")).status).toBe(401)
    expect((await call(a, await login(c, "erin"), "GET", "/api/nodes")).status).toBe(200)
  })

  test("given both URLs and polling B: A's desired closure active within 1 s, A's events on B's stream, A's relayed command run; B SIGKILLed: heartbeats to A within 15 s, nothing acknowledged lost, never unreachable", async () => {
    const { replicas, token } = await startTogether(await pg.database("wakeups"), 2)
    const [a, b] = replicas as [SpawnedControlPlane, SpawnedControlPlane]
    try {
      const { token: join_ } = (await (await call(a, token, "POST", "/api/nodes/join-tokens", {})).json()) as {
        token: string
      }
      await using node = await createTestNode({ name: "replica-node", boot: gen2 })
      // B first: the agent sticks to B until B fails it.
      await using agent = startAgent(node, {
        nodeId: "replica-node",
        controlUrl: `${b.url},${a.url}`,
        joinToken: join_,
      })
      const withLog = (e: Error) => {
        throw new Error(`${e.message}\n${agent.log()}`)
      }
      const nodeOnA = async () =>
        (await (await call(a, token, "GET", "/api/nodes/replica-node")).json()) as {
          lastHeartbeat?: string | null
          status?: string
        }
      await waitFor("the agent's first heartbeat, seen through A", nodeOnA, (n) => !!n.lastHeartbeat).catch(withLog)

      const controller = new AbortController()
      const res = await fetch(`${b.url}/api/events/stream?node=replica-node`, {
        headers: { authorization: `Bearer ${token}` },
        signal: controller.signal,
      })
      expect(res.status).toBe(200)
      const stream = streamText(res.body as ReadableStream<Uint8Array>)
      await stream.until((t) => t.includes("event: ready"))

      const put = await call(a, token, "PUT", "/api/nodes/replica-node/desired", { closure: gen1 })
      expect(put.status).toBe(200)
      await waitFor(
        "the closure active on the node",
        () => node.links(),
        (l) => l.current === gen1,
        1000,
      ).catch(withLog)
      // Made through A, carried by B's stream.
      await stream.until((t) => t.includes("event: desired.changed"))
      expect(stream.text).toContain(gen1)
      controller.abort()

      const run = await call(a, token, "POST", "/api/fleet/run", {
        command: "echo relayed-through-a",
        nodes: ["replica-node"],
        timeout: 5,
      })
      expect(run.status).toBe(200)
      const answer = (await run.json()) as { results: { status: string; stdout: string }[] }
      expect(answer.results).toMatchObject([{ status: "ok", stdout: "relayed-through-a\n" }])

      // What the agent reported and B acknowledged so far.
      type Listed = { events: { type: string; data: { seq?: number } }[] }
      const reported = async () =>
        ((await (await call(a, token, "GET", "/api/events?node=replica-node&limit=1000")).json()) as Listed).events
          .map((e) => e.data.seq)
          .filter((seq): seq is number => typeof seq === "number")
      const before = await waitFor("the activation reported", reported, (seqs) => seqs.length >= 2)

      await b.kill()
      const killedAt = new Date().toISOString()
      await waitFor(
        "a heartbeat through A after B's death",
        nodeOnA,
        (n) => !!n.lastHeartbeat && n.lastHeartbeat > killedAt,
        15_000,
      ).catch(withLog)
      // The node drifts while on A: healed, and reported to A after everything B acknowledged.
      await node.switchTo(gen2)
      await waitFor(
        "healed through A",
        () => node.links(),
        (l) => l.current === gen1,
        15_000,
      ).catch(withLog)
      const after = await waitFor("the heal reported to A", reported, (seqs) => seqs.length > before.length)
      for (const seq of before) expect(after).toContain(seq)
      // Each report once, none missing in between.
      expect(new Set(after).size).toBe(after.length)
      const top = Math.max(...after)
      expect([...after].sort((x, y) => x - y)).toEqual(Array.from({ length: top }, (_, i) => i + 1))
      const unreachable = (await (
        await call(a, token, "GET", "/api/events?node=replica-node&type=node.unreachable")
      ).json()) as Listed
      expect(unreachable.events).toEqual([])
      expect((await nodeOnA()).status).not.toBe("unreachable")
    } finally {
      await Promise.all(replicas.map((r) => r.stop()))
    }
  })

  test("an agent moved off its first replica goes back to it once it is ready again (failback), and heartbeats there", async () => {
    const { replicas, token } = await startTogether(await pg.database("failback"), 2)
    const [a, b] = replicas as [SpawnedControlPlane, SpawnedControlPlane]
    try {
      const { token: join_ } = (await (await call(a, token, "POST", "/api/nodes/join-tokens", {})).json()) as {
        token: string
      }
      await using node = await createTestNode({ name: "failback-node", boot: gen2 })
      await using agent = startAgent(node, {
        nodeId: "failback-node",
        controlUrl: `${a.url},${b.url}`,
        joinToken: join_,
        extraArgs: ["--failback-interval", "1"],
      })
      const withLog = (e: Error) => {
        throw new Error(`${e.message}\n${agent.log()}`)
      }
      const heartbeatsOn = (cp: SpawnedControlPlane) => heartbeatsAnswered(cp, token)
      await waitFor(
        "heartbeats on A, the first URL",
        () => heartbeatsOn(a),
        (n) => n >= 2,
      ).catch(withLog)
      await a.kill()
      await waitFor(
        "heartbeats on B once A is gone",
        () => heartbeatsOn(b),
        (n) => n >= 2,
        15_000,
      ).catch(withLog)
      // A back (a restart, as in a rolling upgrade): the agent returns to it and stays.
      await a.restart()
      await waitFor(
        "the agent back on A",
        async () => agent.log(),
        (log) => log.includes("moving back to it"),
        15_000,
      ).catch(withLog)
      const onB = await heartbeatsOn(b)
      await waitFor(
        "heartbeats on A again",
        () => heartbeatsOn(a),
        (n) => n >= 3,
        15_000,
      ).catch(withLog)
      expect(await heartbeatsOn(b)).toBeLessThanOrEqual(onB + 1)
      const unreachable = (await (
        await call(a, token, "GET", "/api/events?node=failback-node&type=node.unreachable")
      ).json()) as { events: unknown[] }
      expect(unreachable.events).toEqual([])
    } finally {
      await Promise.all(replicas.map((r) => r.stop()))
    }
  })

  test("with --spread-replicas an agent given the list A,B starts on the replica its own order puts first, B, and stays there", async () => {
    const { replicas, token } = await startTogether(await pg.database("spread"), 2)
    const [a, b] = replicas as [SpawnedControlPlane, SpawnedControlPlane]
    try {
      const list = [a.url, b.url]
      // A node whose own order puts B first (half of all ids do); as given, the list puts A first.
      const nodeId =
        Array.from({ length: 64 }, (_, i) => `spread-node-${i}`).find((id) => spreadOrder(list, id)[0] === b.url) ?? ""
      const { token: join_ } = (await (await call(a, token, "POST", "/api/nodes/join-tokens", {})).json()) as {
        token: string
      }
      await using node = await createTestNode({ name: "spread-node", boot: gen2 })
      await using agent = startAgent(node, {
        nodeId,
        controlUrl: list.join(","),
        joinToken: join_,
        extraArgs: ["--spread-replicas"],
      })
      await waitFor(
        "heartbeats on B, first in this node's own order",
        () => heartbeatsAnswered(b, token),
        (n) => n >= 3,
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n${agent.log()}`)
      })
      expect(await heartbeatsAnswered(a, token)).toBe(0)
      expect(agent.log()).toContain("own order")
    } finally {
      await Promise.all(replicas.map((r) => r.stop()))
    }
  })

  test("an event another replica committed late, with an id below one already streamed, still reaches the stream", async () => {
    const url = await pg.database("late_events")
    await using a = await startInProcess({ databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    const controller = new AbortController()
    const res = await fetch(`${b.url}/api/events/stream`, {
      headers: { authorization: `Bearer ${a.adminToken}` },
      signal: controller.signal,
    })
    const stream = streamText(res.body as ReadableStream<Uint8Array>)
    await untilShown(stream, "event: ready")
    // Another replica's transaction takes its id first and commits last, as PostgreSQL allows.
    const db = new SQL(url)
    const other = await db.reserve()
    try {
      await other`BEGIN`
      const now = new Date().toISOString()
      const rows = (await other`
        INSERT INTO events (type, node_id, at, received_at, data) VALUES ('node.enrolled', 'late-node', ${now}, ${now}, '{}')
        RETURNING id`) as { id: number }[]
      const lateId = Number(rows[0]?.id)
      await enrollNode(b, "early-node")
      await untilShown(stream, '"early-node"')
      await other`COMMIT`
      await db.notify(CHANNEL, `another-replica e ${lateId}`)
      await untilShown(stream, '"late-node"')
      expect(stream.text.indexOf('"early-node"')).toBeLessThan(stream.text.indexOf('"late-node"'))
      expect(stream.text).toContain(`id: ${lateId}\n`)
    } finally {
      controller.abort()
      other.release()
      await db.close()
    }
  })

  test("failed logins through different replicas add up: the username locks on all of them", async () => {
    const url = await pg.database("backoff")
    await using a = await startInProcess({ databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    expect(
      (await call(a, a.adminToken, "POST", "/api/users", { username: "frank", password: PASSWORD, role: "viewer" }))
        .status,
    ).toBe(201)
    const attempt = (cp: { url: string }, password: string) =>
      call(cp, null, "POST", "/api/auth/login", { username: "frank", password })
    // The free failures, spread over both replicas: neither alone saw enough to lock.
    for (const cp of [a, b, a, b, a]) expect((await attempt(cp, "wrong password, again")).status).toBe(401)
    for (const cp of [a, b]) {
      const locked = await attempt(cp, PASSWORD)
      expect(locked.status).toBe(429)
      expect(await locked.text()).toContain("too many failed logins")
    }
  })

  test("rate limits are each replica's own: a user past the limit on A still has B's whole budget", async () => {
    const url = await pg.database("rate_limits")
    const trust = { rateLimits: { ...DEFAULT_LIMITS, api: { limit: 3, windowMs: 60_000 } } }
    await using a = await startInProcess({ databaseUrl: url, trust })
    await using b = await startInProcess({ databaseUrl: url, trust, adminToken: a.adminToken })
    expect(
      (await call(a, a.adminToken, "POST", "/api/users", { username: "gina", password: PASSWORD, role: "viewer" }))
        .status,
    ).toBe(201)
    const gina = await login(a, "gina")
    for (let i = 0; i < 3; i++) expect((await call(a, gina, "GET", "/api/nodes")).status).toBe(200)
    expect((await call(a, gina, "GET", "/api/nodes")).status).toBe(429)
    for (let i = 0; i < 3; i++) expect((await call(b, gina, "GET", "/api/nodes")).status).toBe(200)
    const refused = await call(b, gina, "GET", "/api/nodes")
    expect(refused.status).toBe(429)
    expect(refused.headers.get("x-ratelimit-limit")).toBe("3")
  })

  test("a deploy running on A is running, with its targets and progress, when asked through B", async () => {
    const url = await pg.database("deploy_elsewhere")
    const a = await spawnControlPlane(freePort(), { databaseUrl: url })
    try {
      await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
      await enrollNode(a, "quiet-node")
      // Through its agent, which never answers here: the deploy waits on A until its timeout.
      const started = await call(a, a.adminToken, "POST", "/api/deployments", {
        targets: ["quiet-node"],
        closure: gen1,
        confirm_timeout_seconds: 600,
      })
      expect(started.status).toBe(202)
      const { id } = (await started.json()) as { id: string }
      const seen = await waitFor(
        "the deploy's progress through B",
        async () =>
          (await (await call(b, a.adminToken, "GET", `/api/deployments/${id}`)).json()) as Record<string, unknown>,
        (d) => typeof d.progress === "object" && Object.keys(d.progress ?? {}).length > 0,
      )
      expect(seen).toMatchObject({ id, status: "running", targets: ["quiet-node"] })
      expect(String((seen.progress as Record<string, string>)["quiet-node"])).toContain("waiting for the agent")
      expect((await call(b, a.adminToken, "GET", "/api/deployments/20200101000000-0123abcd")).status).toBe(404)
    } finally {
      // SIGKILL: a graceful stop would wait for the deploy's timeout.
      await a.kill()
      await a.stop()
    }
  })

  test("`deploy --via-control-plane` whose replica dies names the deploy and how to ask another replica about it", async () => {
    const url = await pg.database("deploy_cli_lost")
    const a = await spawnControlPlane(freePort(), { databaseUrl: url })
    try {
      await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
      await enrollNode(a, "waiting-node")
      // Through its agent, which never answers here: the deploy runs on A until A dies.
      const cli = spawnRemoteDeploy(a, "waiting-node", gen1)
      type Listed = { events: { data: { id?: string } }[] }
      const started = await waitFor(
        "the deploy started on A, seen through B",
        async () =>
          ((await (await call(b, a.adminToken, "GET", "/api/events?type=deployment.started")).json()) as Listed).events,
        (events) => events.length > 0,
      )
      const id = String(started[0]?.data.id)
      // The event is stored before the CLI has the answer naming the deploy: A dies once the CLI
      // follows it (its first progress line), not while its request to start it is still open.
      let err = ""
      const decoder = new TextDecoder()
      const reading = (async () => {
        for await (const chunk of cli.stderr) err += decoder.decode(chunk, { stream: true })
      })()
      await waitFor(
        "the CLI following the deploy",
        async () => err,
        (text) => text.includes("waiting-node:"),
      )
      await a.kill()
      const code = await cli.exited
      await reading
      expect(code).toBe(1)
      expect(err).toContain(`cannot reach the control plane at ${a.url}`)
      // Not only that A is gone: which deploy it was running, to ask any other replica about.
      expect(err).toContain(`chimera deployments show ${id}`)
      expect((await call(b, a.adminToken, "GET", `/api/deployments/${id}`)).status).toBe(200)
    } finally {
      await a.kill()
      await a.stop()
    }
  })
})
