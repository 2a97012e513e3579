// Node identity: a node's credential cannot touch another node; a revoked node is
// refused at once and cannot heartbeat; credentials rotate on request and on schedule, with the old
// one working until the new one is first used.
import { describe, expect, test } from "bun:test"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"

const beat = (cp: { url: string }, credential: string, nodeId: string) =>
  call(cp, credential, "POST", `/api/agent/${nodeId}/heartbeat`, heartbeatBody(nodeId))

describe("node identity", () => {
  test("a node's credential cannot read or write another node's state", async () => {
    await using cp = await startInProcess()
    const a = await enrollNode(cp, "a")
    await enrollNode(cp, "b")
    expect((await beat(cp, a, "b")).status).toBe(403)
    expect((await call(cp, a, "POST", "/api/agent/a/heartbeat", heartbeatBody("b"))).status).toBe(403)
    expect((await call(cp, a, "GET", "/api/agent/b/commands")).status).toBe(403)
    expect((await call(cp, a, "POST", "/api/agent/b/credential")).status).toBe(403)
    expect((await call(cp, a, "GET", "/api/nodes/a")).status).toBe(403)
    expect((await beat(cp, a, "a")).status).toBe(200)
  })

  test("a join token issued for no node cannot take over an enrolled node; one issued for it can re-enrol it", async () => {
    await using cp = await startInProcess()
    const original = await enrollNode(cp, "db-1")
    const token = async (body: Record<string, unknown>) =>
      ((await (await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", body)).json()) as { token: string })
        .token
    const unbound = await token({})
    const takeover = await call(cp, unbound, "POST", "/api/agent/enroll", { nodeId: "db-1", agentVersion: "t" })
    expect(takeover.status).toBe(401)
    expect(((await takeover.json()) as { error: string }).error).toContain("already enrolled")
    expect((await beat(cp, original, "db-1")).status).toBe(200)
    // The refused token was not spent: it can still enrol a new node.
    expect((await call(cp, unbound, "POST", "/api/agent/enroll", { nodeId: "db-2", agentVersion: "t" })).status).toBe(
      201,
    )

    const bound = await token({ nodeId: "db-1" })
    const reenrol = await call(cp, bound, "POST", "/api/agent/enroll", { nodeId: "db-1", agentVersion: "t" })
    expect(reenrol.status).toBe(201)
    const fresh = ((await reenrol.json()) as { credential: string }).credential
    expect((await beat(cp, fresh, "db-1")).status).toBe(200)
    expect((await beat(cp, original, "db-1")).status).toBe(401)
  })

  test("a revoked node is refused at once, cannot heartbeat, and its unused join tokens die with it", async () => {
    await using cp = await startInProcess()
    const cred = await enrollNode(cp, "web-1")
    const bound = (await (
      await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", { nodeId: "web-1" })
    ).json()) as { token: string }
    expect((await beat(cp, cred, "web-1")).status).toBe(200)
    expect((await call(cp, cp.adminToken, "POST", "/api/nodes/web-1/revoke")).status).toBe(200)
    const refused = await beat(cp, cred, "web-1")
    expect(refused.status).toBe(401)
    expect((await call(cp, cred, "GET", "/api/agent/web-1/commands")).status).toBe(401)
    const reenrol = await call(cp, bound.token, "POST", "/api/agent/enroll", { nodeId: "web-1", agentVersion: "t" })
    expect(reenrol.status).toBe(401)
    const events = (await (await call(cp, cp.adminToken, "GET", "/api/events?node=web-1")).json()) as {
      events: { type: string }[]
    }
    expect(events.events.map((e) => e.type)).toContain("node.revoked")
    expect((await call(cp, cp.adminToken, "POST", "/api/nodes/ghost/revoke")).status).toBe(404)
  })

  test("rotation on request: the heartbeat asks, the node fetches a new credential, the old stops once the new is used", async () => {
    await using cp = await startInProcess()
    const old = await enrollNode(cp, "db-1")
    expect(await (await beat(cp, old, "db-1")).json()).not.toHaveProperty("rotateCredential")
    // Not asked to, the node gets no new credential: each would be an audit row, and a credential
    // anyone holding it could renew at will.
    const early = await call(cp, old, "POST", "/api/agent/db-1/credential")
    expect(early.status).toBe(409)
    expect(((await early.json()) as { error: string }).error).toContain("no credential rotation is due for this node")
    // Refused before an action's audit row: many such calls are one row of the refusal counter's.
    for (let i = 0; i < 20; i++) await call(cp, old, "POST", "/api/agent/db-1/credential")
    const action = encodeURIComponent("POST /api/agent/:nodeId/credential")
    const rows = (await (await call(cp, cp.adminToken, "GET", `/api/audit?limit=1000&action=${action}`)).json()) as {
      entries: { status: number }[]
    }
    expect(rows.entries.map((e) => e.status)).toEqual([409])
    expect((await call(cp, cp.adminToken, "POST", "/api/nodes/db-1/rotate-credential")).status).toBe(200)
    expect(await (await beat(cp, old, "db-1")).json()).toMatchObject({ rotateCredential: true })

    const issued = await call(cp, old, "POST", "/api/agent/db-1/credential")
    expect(issued.status).toBe(201)
    const { credential } = (await issued.json()) as { credential: string }
    // Until the new credential is used, the old one keeps working (the agent may not have stored it yet).
    expect((await beat(cp, old, "db-1")).status).toBe(200)
    const first = await beat(cp, credential, "db-1")
    expect(first.status).toBe(200)
    expect(await first.json()).not.toHaveProperty("rotateCredential")
    expect((await beat(cp, old, "db-1")).status).toBe(401)
    expect((await beat(cp, credential, "db-1")).status).toBe(200)
  })

  test("rotation on schedule: a credential older than auth.node_credential_rotation_days is asked to rotate", async () => {
    let t = Date.now()
    const clock = { now: () => new Date(t) }
    await using cp = await startInProcess({ clock, trust: { nodeCredentialRotationDays: 30 } })
    const cred = await enrollNode(cp, "edge-1")
    expect(await (await beat(cp, cred, "edge-1")).json()).not.toHaveProperty("rotateCredential")
    t += 31 * 86_400_000
    expect(await (await beat(cp, cred, "edge-1")).json()).toMatchObject({ rotateCredential: true })
    const { credential } = (await (await call(cp, cred, "POST", "/api/agent/edge-1/credential")).json()) as {
      credential: string
    }
    expect(await (await beat(cp, credential, "edge-1")).json()).not.toHaveProperty("rotateCredential")
  })
})
