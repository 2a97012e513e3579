// A node whose credential stops working gets nothing more, not even through a long poll it opened
// while the credential still worked: revocation answers that poll 401 at once (on every replica), the
// credential is checked again whenever commands are handed out (so a rotation that retired it counts
// too), and the relay reports a revoked node as not relayed. A closure set as desired for a revoked node
// waits for the node's next enrolment, never reaching the old credential.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"

setDefaultTimeout(60_000)

const GEN2 = "/nix/store/0c8a6hk5pbyhhpqiwz6xkbxhf5j7kb3a-chimera-test-system-2"
const SECRET = "s3cr3t-value"
/** Far beyond what an answer "at once" may take: a poll that ran its course would take 25 s. */
const AT_ONCE_MS = 5_000

interface Relayed {
  results: { node: string; status: string; stderr: string }[]
  summary: Record<string, number>
}

const beat = (cp: { url: string }, credential: string, nodeId: string) =>
  call(cp, credential, "POST", `/api/agent/${nodeId}/heartbeat`, heartbeatBody(nodeId))

/** A long poll with `credential`, opened now; its answer, and how long it took. */
function openPoll(cp: { url: string }, credential: string, nodeId: string, waitSeconds = 25) {
  const t0 = performance.now()
  return call(cp, credential, "GET", `/api/agent/${nodeId}/commands?wait=${waitSeconds}`).then(async (res) => ({
    status: res.status,
    body: await res.text(),
    ms: performance.now() - t0,
  }))
}

/** Time for a poll just opened to be past its first look at the store and waiting. */
const held = () => Bun.sleep(300)

const relay = async (cp: TestControlPlane, body: Record<string, unknown>) => {
  const res = await call(cp, cp.adminToken, "POST", "/api/fleet/run", body)
  return { status: res.status, body: (await res.json()) as Relayed }
}

const secretRun = (nodes: string[]) => ({ command: `DB_PASSWORD=${SECRET} /usr/bin/true`, nodes, timeout: 5 })

describe("revoked node credentials and open long polls (SQLite)", () => {
  test("a poll held when its node is revoked answers 401 at once; the command and closure queued after never reach it", async () => {
    await using cp = await startInProcess()
    const cred = await revocationEndsHeldPoll(cp, cp, "node-a")

    const ran = await relay(cp, secretRun(["node-a"]))
    // Setting a revoked node's desired closure is allowed: it is for the node's next enrolment.
    expect((await call(cp, cp.adminToken, "PUT", "/api/nodes/node-a/desired", { closure: GEN2 })).status).toBe(200)
    // Reported as not relayed, like an unreachable node, and nothing was queued for it.
    expect(ran.status).toBe(200)
    expect(ran.body.summary).toMatchObject({ ok: 0, offline: 1 })
    expect(ran.body.results).toEqual([
      expect.objectContaining({ node: "node-a", status: "offline", stderr: expect.stringContaining("revoked") }),
    ])
    const again = await openPoll(cp, cred, "node-a", 0)
    expect(again.status).toBe(401)
    expect(again.body).not.toContain(GEN2)
    expect(again.body).not.toContain(SECRET)

    // Enrolled again, the node gets the closure set meanwhile, and no relayed command.
    const fresh = await enrollNode(cp, "node-a")
    const next = await openPoll(cp, fresh, "node-a", 0)
    expect(next.status).toBe(200)
    const { commands } = JSON.parse(next.body) as { commands: { kind: string; closure?: string }[] }
    expect(commands).toEqual([expect.objectContaining({ kind: "activate", closure: GEN2 })])
  })

  test("a poll held with a credential that re-enrolment replaced answers 401 at once", async () => {
    await using cp = await startInProcess()
    const old = await enrollNode(cp, "node-e")
    const pending = openPoll(cp, old, "node-e")
    await held()
    const fresh = await enrollNode(cp, "node-e")
    const answer = await pending
    expect(answer.status).toBe(401)
    expect(answer.ms).toBeLessThan(AT_ONCE_MS)
    expect((await openPoll(cp, fresh, "node-e", 0)).status).toBe(200)
  })

  test("the relay names a revoked node as not relayed among the others, with `all` too", async () => {
    await using cp = await startInProcess()
    const a = await enrollNode(cp, "node-a")
    const b = await enrollNode(cp, "node-b")
    expect((await beat(cp, a, "node-a")).status).toBe(200)
    expect((await beat(cp, b, "node-b")).status).toBe(200)
    expect((await call(cp, cp.adminToken, "POST", "/api/nodes/node-a/revoke")).status).toBe(200)
    // node-b's "agent": takes the command on its poll and acks it.
    const agentB = (async () => {
      for (let i = 0; i < 2; i++) {
        const polled = await openPoll(cp, b, "node-b", 10)
        const { commands } = JSON.parse(polled.body) as { commands: { id: string }[] }
        for (const c of commands)
          await call(cp, b, "POST", `/api/agent/node-b/commands/${c.id}/ack`, {
            success: true,
            output: "",
            exitCode: 0,
            stderr: "",
          })
      }
    })()
    for (const body of [secretRun(["node-a", "node-b"]), { command: "/usr/bin/true", all: true, timeout: 5 }]) {
      const ran = await relay(cp, body)
      expect(ran.status).toBe(200)
      expect(ran.body.summary).toMatchObject({ ok: 1, offline: 1, timeout: 0 })
      expect(ran.body.results.find((r) => r.node === "node-a")).toMatchObject({
        status: "offline",
        stderr: expect.stringContaining("revoked"),
      })
      expect(ran.body.results.find((r) => r.node === "node-b")).toMatchObject({ status: "ok" })
    }
    await agentB
  })

  test("a poll whose credential a rotation retired while it waited is refused at once, and never handed a command", async () => {
    await using cp = await startInProcess()
    await rotationRefusesHeldPoll(cp, cp, "node-r")
  })
})

describe("revoked node credentials and open long polls (PostgreSQL, two replicas)", () => {
  let pg: TestPostgres
  beforeAll(async () => {
    pg = await startPostgres()
  })
  afterAll(async () => {
    await pg?.stop()
  })

  test("revoked through replica A, a poll held on replica B answers 401 at once and gets no command", async () => {
    const url = await pg.database("revoked_polls")
    await using a = await startInProcess({ databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    const cred = await revocationEndsHeldPoll(a, b, "node-a")

    const ran = await relay(a, secretRun(["node-a"]))
    expect((await call(a, a.adminToken, "PUT", "/api/nodes/node-a/desired", { closure: GEN2 })).status).toBe(200)
    expect(ran.body.results).toEqual([
      expect.objectContaining({ node: "node-a", status: "offline", stderr: expect.stringContaining("revoked") }),
    ])
    const again = await openPoll(b, cred, "node-a", 0)
    expect(again.status).toBe(401)
    expect(again.body).not.toContain(GEN2)
    // Enrolled again through A, the node polling B gets the closure set while it was revoked.
    const fresh = await enrollNode(a, "node-a")
    const next = await openPoll(b, fresh, "node-a", 0)
    expect(next.status).toBe(200)
    expect(next.body).toContain(GEN2)
  })

  test("a rotation through replica B retires the credential a poll on B holds at once; a closure set through A never reaches it", async () => {
    const url = await pg.database("rotated_polls")
    await using a = await startInProcess({ databaseUrl: url })
    await using b = await startInProcess({ databaseUrl: url, adminToken: a.adminToken })
    await rotationRefusesHeldPoll(a, b, "node-r")
  })
})

/**
 * A node enrolled through `admin` holds a poll on `node`; `admin` revokes it, and the revocation alone
 * (nothing is queued yet) ends the poll with 401 at once. Returns the revoked credential.
 */
async function revocationEndsHeldPoll(admin: TestControlPlane, node: TestControlPlane, nodeId: string) {
  const cred = await enrollNode(admin, nodeId)
  expect((await beat(node, cred, nodeId)).status).toBe(200)
  const pending = openPoll(node, cred, nodeId)
  await held()
  expect((await call(admin, admin.adminToken, "POST", `/api/nodes/${nodeId}/revoke`)).status).toBe(200)
  const answer = await pending
  expect(answer.status).toBe(401)
  expect(answer.ms).toBeLessThan(AT_ONCE_MS)
  return cred
}

/**
 * A node polls `node` with its credential while `admin` asks for a rotation; the new credential's
 * first use retires the old one, and the poll held with it is refused at once. A closure set through
 * `admin` afterwards goes to the new credential only.
 */
async function rotationRefusesHeldPoll(admin: TestControlPlane, node: TestControlPlane, nodeId: string) {
  const old = await enrollNode(admin, nodeId)
  expect((await beat(node, old, nodeId)).status).toBe(200)
  const pending = openPoll(node, old, nodeId)
  await held()
  expect((await call(admin, admin.adminToken, "POST", `/api/nodes/${nodeId}/rotate-credential`)).status).toBe(200)
  const issued = await call(node, old, "POST", `/api/agent/${nodeId}/credential`)
  expect(issued.status).toBe(201)
  const { credential } = (await issued.json()) as { credential: string }
  const retiredAt = performance.now()
  expect((await beat(node, credential, nodeId)).status).toBe(200)
  const answer = await pending
  expect(answer.status).toBe(401)
  expect(performance.now() - retiredAt).toBeLessThan(AT_ONCE_MS)
  expect((await beat(node, old, nodeId)).status).toBe(401)

  expect((await call(admin, admin.adminToken, "PUT", `/api/nodes/${nodeId}/desired`, { closure: GEN2 })).status).toBe(
    200,
  )
  expect((await openPoll(node, old, nodeId, 0)).status).toBe(401)
  const next = await openPoll(node, credential, nodeId, 0)
  expect(next.status).toBe(200)
  expect(next.body).toContain(GEN2)
}
