// A relayed run cancelled through the replicas of one real PostgreSQL database: the run waits on
// replica A, its agent long-polls replica B. A cancel through A wakes B's poll (LISTEN/NOTIFY) to tell
// the agent, which stops the command and acks it to B, and A's relay reads that ack; a cancel through
// B of a command not yet fetched closes it, and A's relay answers it at once.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { startAgent } from "./support/agent-process.ts"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { freePort, type SpawnedControlPlane, spawnControlPlane } from "./support/control-plane.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { createTestNode } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

let pg: TestPostgres
let a: SpawnedControlPlane
let b: SpawnedControlPlane

beforeAll(async () => {
  pg = await startPostgres()
  const url = await pg.database("relay_cancel")
  a = await spawnControlPlane(freePort(), { databaseUrl: url })
  b = await spawnControlPlane(freePort(), { databaseUrl: url, adminToken: a.adminToken })
})

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  await pg?.stop()
})

interface RelayAnswer {
  results: { node: string; status: string; stdout: string; stderr: string; exit_code: number | null }[]
}

test("cancelled through replica A, a command whose agent polls replica B stops, and A's run answers it cancelled", async () => {
  const token = a.adminToken
  const { token: joinToken } = (await (await call(a, token, "POST", "/api/nodes/join-tokens", {})).json()) as {
    token: string
  }
  await using node = await createTestNode({ name: "cancel-replica" })
  await using agent = startAgent(node, { nodeId: "cancel-replica", controlUrl: b.url, joinToken })
  const withLog = (e: Error) => {
    throw new Error(`${e.message}\n${agent.log()}`)
  }
  await waitFor(
    "the agent heard from, through A",
    async () => (await (await call(a, token, "GET", "/api/nodes/cancel-replica")).json()) as { lastHeartbeat?: string },
    (n) => typeof n.lastHeartbeat === "string",
  ).catch(withLog)

  const runId = randomUUID()
  const marker = `/tmp/chimera-cancel-replica-${runId}`
  const t0 = performance.now()
  const answer = call(a, token, "POST", "/api/fleet/run", {
    command: `echo begun; sleep 4.1773; touch ${marker}`,
    nodes: ["cancel-replica"],
    timeout: 30,
    run_id: runId,
  })
  const sleeping = async () => (await node.exec(["pgrep", "-f", "^sleep 4[.]1773"]))?.code === 0
  await waitFor("the command running on the node", sleeping, Boolean, 10_000).catch(withLog)
  const cancelled = await call(a, token, "POST", `/api/fleet/run/${runId}/cancel`)
  expect({ status: cancelled.status, body: await cancelled.json() }).toEqual({
    status: 202,
    body: { run_id: runId, stopping: ["cancel-replica"], not_started: [], ended: [] },
  })
  const res = await answer
  expect(res.status).toBe(200)
  const body = (await res.json()) as RelayAnswer
  expect(body.results[0]).toMatchObject({ status: "cancelled", exit_code: null, stdout: "begun\n" })
  expect(performance.now() - t0).toBeLessThan(4000)
  expect(await sleeping()).toBe(false)
  await Bun.sleep(Math.max(0, 5000 - (performance.now() - t0)))
  expect(existsSync(marker)).toBe(false)
})

test("cancelled through B before its agent fetched it, a command relayed through A is never delivered; A answers at once", async () => {
  const credential = await enrollNode(a, "cancel-hand")
  await call(a, credential, "POST", "/api/agent/cancel-hand/heartbeat", heartbeatBody("cancel-hand"))
  const runId = randomUUID()
  const t0 = performance.now()
  const answer = call(a, a.adminToken, "POST", "/api/fleet/run", {
    command: "true",
    nodes: ["cancel-hand"],
    timeout: 20,
    run_id: runId,
  })
  const status = await waitFor(
    "the run queued, cancelled through B",
    async () => (await call(b, a.adminToken, "POST", `/api/fleet/run/${runId}/cancel`)).status,
    (s) => s !== 404,
    5000,
  )
  expect(status).toBe(202)
  const body = (await (await answer).json()) as RelayAnswer
  expect(body.results[0]).toMatchObject({ node: "cancel-hand", status: "cancelled", exit_code: null })
  // Told by B's notification (or read within a second by A's fallback), long before the timeout.
  expect(performance.now() - t0).toBeLessThan(5000)
  const polled = await (await call(b, credential, "GET", "/api/agent/cancel-hand/commands?wait=0")).json()
  expect(polled).toEqual({ commands: [] })
})
