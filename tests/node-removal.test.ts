// `chimera nodes remove`: a retired machine leaves the fleet. Its credential is refused, its open
// incidents are resolved, what was queued for it is not handed to the next machine enrolled under its
// name, and its history (events, audit) is kept; a machine may enrol under the name again with a join
// token issued for it, and its reports are taken as new ones, not as the old machine's repeated.
import { expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { incidentStore } from "../control/adapters/store/incident-store.ts"
import { openDatabase, sqlStore } from "../control/adapters/store/sql-store.ts"
import { HOLD_MS } from "../control/adapters/store/sqlite-hot-path.ts"
import { call, enrollNode, healFailedReport, heartbeatBody } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { startPostgres } from "./support/postgres.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
type Incident = { nodeId: string; problem: string; status: string; resolution?: string }

test("a removed node is gone from the fleet, refused, its incidents resolved; its name can enrol again", async () => {
  await using cp = await startInProcess()
  const home = await mkdtemp(join(tmpdir(), "chimera-node-removal-"))
  const env = { HOME: home, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, CHIMERA_CONFIG_FILE: "", NO_COLOR: "1" }
  const chimera = (...args: string[]) => run([process.execPath, MAIN, ...args], { env })
  try {
    const old = await enrollNode(cp, "old-1")
    await enrollNode(cp, "kept-1")
    expect((await call(cp, old, "POST", "/api/agent/old-1/heartbeat", heartbeatBody("old-1"))).status).toBe(200)
    expect((await call(cp, old, "POST", "/api/agent/old-1/reports", { reports: [healFailedReport(1)] })).status).toBe(
      200,
    )
    const open = async () =>
      ((await (await cp.api("/api/incidents?node=old-1&status=open")).json()) as { incidents: Incident[] }).incidents
    await waitFor("the failed heal's incident", open, (list) => list.length === 1)
    // A command queued for it, not yet fetched: the run waits for its answer.
    const relayed = call(cp, cp.adminToken, "POST", "/api/fleet/run", {
      command: "uptime",
      nodes: ["old-1"],
      timeout: 30,
    })
    await waitFor(
      "the command to be queued",
      async () => (await (await cp.api("/api/nodes/old-1/commands")).json()) as { commands: unknown[] },
      (r) => r.commands.length === 1,
    )

    const removed = await chimera("nodes", "remove", "old-1", "--json")
    expect({ code: removed.code, stderr: removed.stderr }).toEqual({ code: 0, stderr: "" })
    expect(JSON.parse(removed.stdout)).toEqual({ nodeId: "old-1", removed: true })

    const listed = (await (await cp.api("/api/nodes")).json()) as { nodes: { id: string }[] }
    expect(listed.nodes.map((n) => n.id)).toEqual(["kept-1"])
    expect((await cp.api("/api/nodes/old-1")).status).toBe(404)
    expect((await call(cp, old, "POST", "/api/agent/old-1/heartbeat", heartbeatBody("old-1"))).status).toBe(401)
    await waitFor("its incident to be resolved", open, (list) => list.length === 0)
    const ran = (await (await relayed).json()) as { results: { node: string; status: string; output: string }[] }
    // The run waiting for its answer learns at once that none will come.
    expect(ran.results[0]).toMatchObject({ node: "old-1", status: "failed" })
    expect(JSON.stringify(ran.results[0])).toContain("not delivered: the node was removed from the fleet")
    const history = (await (await cp.api("/api/events?node=old-1")).json()) as { events: { type: string }[] }
    expect(history.events.map((e) => e.type)).toContain("heal.failed")
    expect(history.events.map((e) => e.type)).toContain("node.removed")

    // Again, or a typo: no such node.
    const again = await chimera("nodes", "remove", "old-1")
    expect({ code: again.code, stderr: again.stderr }).toEqual({
      code: 1,
      stderr: expect.stringContaining('no node "old-1"'),
    })

    // A new machine under the name. A join token for no node in particular may not take it: scripts
    // and habits still name the retired machine, and whoever holds a leaked token would get what they
    // send it. One the operator issued for the name may, and its first report (seq 1 again) is
    // stored, not taken for the old machine's.
    const general = (await (await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", {})).json()) as {
      token: string
    }
    const taken = await call(cp, general.token, "POST", "/api/agent/enroll", {
      nodeId: "old-1",
      hostname: "intruder",
      agentVersion: "t",
    })
    expect(taken.status).toBe(401)
    expect(await taken.text()).toContain("chimera nodes join-token --node old-1")
    const jt = (await (
      await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId: "old-1" })
    ).json()) as {
      token: string
    }
    const enrolled = await call(cp, jt.token, "POST", "/api/agent/enroll", {
      nodeId: "old-1",
      hostname: "new",
      agentVersion: "t",
    })
    expect(enrolled.status).toBe(201)
    const fresh = ((await enrolled.json()) as { credential: string }).credential
    expect((await call(cp, fresh, "POST", "/api/agent/old-1/reports", { reports: [healFailedReport(1)] })).status).toBe(
      200,
    )
    const after = (await (await cp.api("/api/events?node=old-1&type=heal.failed")).json()) as { events: unknown[] }
    expect(after.events).toHaveLength(2)
    const shown = (await (await cp.api("/api/nodes/old-1")).json()) as { hostname: string; desiredPath: string | null }
    expect(shown).toMatchObject({ hostname: "new", desiredPath: null })
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test("removing a node needs nodes:manage: an operator is refused", async () => {
  await using cp = await startInProcess()
  await enrollNode(cp, "web-1")
  const tokenRes = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "ops", role: "operator" })
  const { token } = (await tokenRes.json()) as { token: string }
  expect((await call(cp, token, "DELETE", "/api/nodes/web-1")).status).toBe(403)
  expect((await cp.api("/api/nodes/web-1")).status).toBe(200)
})

test("a machine enrolled under a removed name starts fresh, whatever reached the old row after the removal", async () => {
  await using cp = await startInProcess()
  const old = await enrollNode(cp, "gone-1")
  expect((await call(cp, old, "POST", "/api/agent/gone-1/heartbeat", heartbeatBody("gone-1"))).status).toBe(200)
  // A second handle on the control plane's database: a `PUT …/desired` and a relay that found the
  // node before its removal committed write the old row after it.
  const { db, dialect } = await openDatabase(`sqlite://${join(cp.dataDir, "chimera.db")}`)
  const late = sqlStore(db, dialect)
  try {
    expect((await call(cp, cp.adminToken, "DELETE", "/api/nodes/gone-1")).status).toBe(200)
    const at = new Date().toISOString()
    // The closure is refused (the API answers 404, as for a node removed before)…
    expect(
      await late.setDesired("gone-1", GEN, { id: "late-activate", kind: "activate", closure: GEN, createdAt: at }),
    ).toBeNull()
    // …and a relayed command still queued is closed when the name is taken.
    await late.enqueueCommands([
      { nodeId: "gone-1", command: { id: "late-run", kind: "run", command: "id", timeoutSeconds: 600, createdAt: at } },
    ])

    const jt = (await (
      await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId: "gone-1" })
    ).json()) as {
      token: string
    }
    const enrolled = await call(cp, jt.token, "POST", "/api/agent/enroll", {
      nodeId: "gone-1",
      hostname: "newcomer",
      agentVersion: "t",
    })
    expect(enrolled.status).toBe(201)
    const fresh = ((await enrolled.json()) as { credential: string }).credential
    // Before its first heartbeat the node is one never heard from, not the old machine's last word.
    const shown = (await (await cp.api("/api/nodes/gone-1")).json()) as Record<string, unknown>
    expect(shown).toMatchObject({ hostname: "newcomer", desiredPath: null, lastHeartbeat: null, currentPath: null })
    const polled = await call(cp, fresh, "GET", "/api/agent/gone-1/commands?wait=0")
    expect(((await polled.json()) as { commands: unknown[] }).commands).toEqual([])
    const beat = await call(cp, fresh, "POST", "/api/agent/gone-1/heartbeat", {
      ...heartbeatBody("gone-1"),
      hostname: "newcomer",
    })
    expect(((await beat.json()) as { desired: string | null }).desired).toBeNull()
  } finally {
    await late.close()
  }
})

test("a report batch that reaches the store after its node's removal is refused, not stored", async () => {
  await using cp = await startInProcess()
  const old = await enrollNode(cp, "late-1")
  expect((await call(cp, old, "POST", "/api/agent/late-1/reports", { reports: [healFailedReport(1)] })).status).toBe(
    200,
  )
  // A second handle stands for the request authenticated before the removal whose body came after:
  // stored, its failed heal would open an incident for a node no longer there, open for good.
  const { db, dialect } = await openDatabase(`sqlite://${join(cp.dataDir, "chimera.db")}`)
  const late = sqlStore(db, dialect)
  try {
    expect((await call(cp, cp.adminToken, "DELETE", "/api/nodes/late-1")).status).toBe(200)
    const at = new Date().toISOString()
    const event = { type: "heal.failed" as const, nodeId: "late-1", at, receivedAt: at, data: {}, agentSeq: 2 }
    expect(await late.appendReports("late-1", [event])).toBeNull()
    const stored = (await (await cp.api("/api/events?node=late-1&type=heal.failed")).json()) as { events: unknown[] }
    expect(stored.events).toHaveLength(1)
  } finally {
    await late.close()
  }
})

test("a machine enrolled under a removed name has no load, memory or disk history of the old one's", async () => {
  await using cp = await startInProcess()
  const old = await enrollNode(cp, "hist-1")
  expect((await call(cp, old, "POST", "/api/agent/hist-1/heartbeat", heartbeatBody("hist-1"))).status).toBe(200)
  const samples = async () =>
    ((await (await cp.api("/api/nodes/hist-1/health-history")).json()) as { samples: unknown[] }).samples
  expect(await samples()).toHaveLength(1)
  expect((await call(cp, cp.adminToken, "DELETE", "/api/nodes/hist-1")).status).toBe(200)
  await enrollNode(cp, "hist-1")
  expect(await samples()).toEqual([])
})

test("a watch that outlasts its node's removal opens no incident for it", async () => {
  await using cp = await startInProcess({ incidents: { unreachableAfterMs: 500, driftUnhealedAfterMs: 500 } })
  const old = await enrollNode(cp, "watched-1")
  expect((await call(cp, old, "POST", "/api/agent/watched-1/heartbeat", heartbeatBody("watched-1"))).status).toBe(200)
  const { db } = await openDatabase(`sqlite://${join(cp.dataDir, "chimera.db")}`)
  try {
    expect((await call(cp, cp.adminToken, "DELETE", "/api/nodes/watched-1")).status).toBe(200)
    // Started by an event handled after node.removed (the sweep's node.unreachable for a node it
    // flipped just before the removal committed), as the incident engine stores it.
    const watches = incidentStore(db)
    await watches.startWatch("watched-1", "unreachable", Date.now() - 5000, "no heartbeat since a while ago")
    await waitFor(
      "the watch to be taken",
      async () => (await watches.dueWatches("unreachable", Date.now() + 60_000, 10)).length,
      (n) => n === 0,
    )
    // The tick that took it has opened its incident by now, if it was going to.
    await Bun.sleep(500)
    const open = (await (await cp.api("/api/incidents?node=watched-1&status=open")).json()) as { incidents: unknown[] }
    expect(open.incidents).toEqual([])
  } finally {
    await db.close()
  }
})

test("on PostgreSQL, a removal that commits while a report batch is written rolls the batch back", async () => {
  await using pg = await startPostgres()
  const url = await pg.database("node_removal_race")
  await using cp = await startInProcess({ databaseUrl: url })
  const old = await enrollNode(cp, "racing-1")
  expect((await call(cp, old, "POST", "/api/agent/racing-1/reports", { reports: [healFailedReport(1)] })).status).toBe(
    200,
  )
  const { db, dialect } = await openDatabase(url)
  const late = sqlStore(db, dialect)
  try {
    // The removal's write holds the node's row while the batch is written beside it.
    const { promise: locked, resolve: lock } = Promise.withResolvers<void>()
    const { promise: released, resolve: release } = Promise.withResolvers<void>()
    const removal = db.begin(async (tx) => {
      await tx`UPDATE nodes SET removed_at = ${new Date().toISOString()} WHERE id = 'racing-1'`
      lock()
      await released
    })
    await locked
    const at = new Date().toISOString()
    const batch = late.appendReports("racing-1", [
      { type: "heal.failed", nodeId: "racing-1", at, receivedAt: at, data: {}, agentSeq: 2 },
    ])
    await Bun.sleep(200)
    release()
    await removal
    expect(await batch).toBeNull()
    const stored = (await db`SELECT agent_seq FROM events WHERE node_id = 'racing-1' AND type = 'heal.failed'`) as {
      agent_seq: number
    }[]
    expect(stored.map((r) => Number(r.agent_seq))).toEqual([1])
  } finally {
    await late.close()
  }
}, 120_000)

test("a heartbeat of a removed machine still held in memory never lands on the machine enrolled under its name", async () => {
  await using cp = await startInProcess()
  const old = await enrollNode(cp, "swap-1")
  // The first heartbeat is written; the second says nothing new, so it is held (sqlite-hot-path.ts).
  expect((await call(cp, old, "POST", "/api/agent/swap-1/heartbeat", heartbeatBody("swap-1"))).status).toBe(200)
  const quiet = { ...heartbeatBody("swap-1"), uptimeSeconds: 4242 }
  expect((await call(cp, old, "POST", "/api/agent/swap-1/heartbeat", quiet)).status).toBe(200)
  expect((await call(cp, cp.adminToken, "DELETE", "/api/nodes/swap-1")).status).toBe(200)
  await enrollNode(cp, "swap-1")

  const shown = (await (await cp.api("/api/nodes/swap-1")).json()) as Record<string, unknown>
  expect(shown).toMatchObject({ lastHeartbeat: null, health: null })
  // Past the time held heartbeats are written, the row is still one never heard from.
  const { db } = await openDatabase(`sqlite://${join(cp.dataDir, "chimera.db")}`)
  try {
    await Bun.sleep(HOLD_MS * 2)
    const rows = (await db`SELECT last_heartbeat, health FROM nodes WHERE id = 'swap-1'`) as Record<string, unknown>[]
    expect(rows[0]).toEqual({ last_heartbeat: null, health: null })
  } finally {
    await db.close()
  }
})
