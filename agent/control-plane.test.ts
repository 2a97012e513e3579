// The agent against the real control plane (in this process, on loopback), inside a test node:
// enrollment and what it leaves on disk, an `activate` command carried out and acknowledged after its
// heal, and a restart that reuses the stored credential. The fleet-level scenarios (drift healed and
// shown healthy, SIGKILL of the control plane) live in tests/core-loop.test.ts.
import { beforeAll, describe, expect, test } from "bun:test"
import { statSync } from "node:fs"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "../tests/support/agent-process.ts"
import { startInProcess, type TestControlPlane } from "../tests/support/control-plane.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestNode } from "../tests/support/test-node.ts"

let gen1: StorePath
let gen2: StorePath

beforeAll(async () => {
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1, { tag: "agentcp" }), buildTestSystem(2, { tag: "agentcp" })])
})

async function joinToken(cp: TestControlPlane): Promise<string> {
  const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
  expect(res.status).toBe(201)
  return ((await res.json()) as { token: string }).token
}

type Event = { type: string; data: Record<string, unknown> }
const events = async (cp: TestControlPlane, id: string): Promise<Event[]> =>
  ((await (await cp.api(`/api/events?node=${id}&limit=1000`)).json()) as { events: Event[] }).events

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await read()
    if (ok(v)) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`)
    await Bun.sleep(50)
  }
}

describe("agent and control plane", () => {
  test("enrolls once, keeps its credential private, acks an activate command after healing, never logs secrets", async () => {
    await using cp = await startInProcess()
    await using node = await createTestNode({ name: "cp-agent", boot: gen1 })
    const token = await joinToken(cp)
    const agent = startAgent(node, { nodeId: "cp-agent", controlUrl: cp.url, joinToken: token })
    try {
      await until(
        "enrollment",
        async () => (await cp.api("/api/nodes/cp-agent")).status,
        (s) => s === 200,
      )
      // The node is enrolled once the control plane answered; the agent writes the credential just after.
      await until(
        "the credential file",
        () => Bun.file(join(agent.stateDir, "credential.json")).exists(),
        (exists) => exists,
      )
      expect(statSync(agent.stateDir).mode & 0o777).toBe(0o700)
      expect(statSync(join(agent.stateDir, "credential.json")).mode & 0o777).toBe(0o600)

      const put = await cp.api("/api/nodes/cp-agent/desired", {
        method: "PUT",
        body: JSON.stringify({ closure: gen2 }),
      })
      expect(put.status).toBe(200)
      await until(
        "the node on gen2",
        () => node.links(),
        (l) => l.profile === gen2 && l.current === gen2,
      )
      const acked = await until(
        "command.acked",
        () => events(cp, "cp-agent"),
        (es) => es.some((e) => e.type === "command.acked"),
      )
      expect(acked.find((e) => e.type === "command.acked")?.data.success).toBe(true)
      const desired = JSON.parse(await Bun.file(join(agent.stateDir, "desired.json")).text())
      expect(desired.closure).toBe(gen2)
      expect(await agent.stop()).toBe(0)

      // A restart needs no join token: the stored credential is used.
      const credential = JSON.parse(await Bun.file(join(agent.stateDir, "credential.json")).text()).credential
      const again = startAgent(node, { nodeId: "cp-agent", controlUrl: cp.url })
      try {
        const before = (await events(cp, "cp-agent")).length
        await node.switchTo(gen1)
        await until(
          "the node back on gen2",
          () => node.links(),
          (l) => l.current === gen2 && l.profile === gen2,
        )
        await until(
          "heal.succeeded after the restart",
          async () => (await events(cp, "cp-agent")).slice(before),
          (es) => es.some((e) => e.type === "heal.succeeded"),
        )
      } finally {
        expect(await again.stop()).toBe(0)
      }
      const logs = agent.log() + again.log()
      expect(logs).not.toContain(token)
      expect(logs).not.toContain(credential)
    } catch (error) {
      await agent.stop()
      throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
    }
  })

  test("a restarted agent's first heartbeat reports the system it reads, never a node with nothing running", async () => {
    await using cp = await startInProcess()
    await using node = await createTestNode({ name: "cp-restart", boot: gen1 })
    const agent = startAgent(node, { nodeId: "cp-restart", controlUrl: cp.url, joinToken: await joinToken(cp) })
    type Seen = { status: string; currentHash: string | null; lastHeartbeat: string }
    const seen = async () => (await (await cp.api("/api/nodes/cp-restart")).json()) as Seen
    try {
      await until(
        "enrollment",
        async () => (await cp.api("/api/nodes/cp-restart")).status,
        (s) => s === 200,
      )
      await cp.api("/api/nodes/cp-restart/desired", { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
      await until("healthy", seen, (n) => n.status === "healthy")
      expect(await agent.stop()).toBe(0)
    } catch (error) {
      await agent.stop()
      throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
    }
    const last = (await seen()).lastHeartbeat
    // Heartbeats 5 s apart: a wrong first one would stand long enough to be read here.
    await using _again = startAgent(node, { nodeId: "cp-restart", controlUrl: cp.url, heartbeatSeconds: 5 })
    const first = await until("the restarted agent's heartbeat", seen, (n) => n.lastHeartbeat !== last)
    expect({ status: first.status, current: first.currentHash }).toEqual({
      status: "healthy",
      current: gen1.slice(11, 43),
    })
  })

  test("a revoked node comes back when its agent is restarted with a new join token, its old credential still on disk", async () => {
    await using cp = await startInProcess()
    await using node = await createTestNode({ name: "cp-revoked", boot: gen1 })
    const agent = startAgent(node, { nodeId: "cp-revoked", controlUrl: cp.url, joinToken: await joinToken(cp) })
    const beat = async () =>
      ((await (await cp.api("/api/nodes/cp-revoked")).json()) as { lastHeartbeat?: string }).lastHeartbeat ?? ""
    try {
      await until("enrollment", beat, (at) => at !== "")
      await until(
        "the credential file",
        () => Bun.file(join(agent.stateDir, "credential.json")).exists(),
        (exists) => exists,
      )
      expect((await cp.api("/api/nodes/cp-revoked/revoke", { method: "POST" })).status).toBe(200)
    } finally {
      await agent.stop()
    }
    const revokedAt = await beat()
    const old = await Bun.file(join(agent.stateDir, "credential.json")).text()
    // A node already enrolled takes only a join token issued for it (`chimera nodes join-token --node`).
    const res = await cp.api("/api/nodes/join-tokens", {
      method: "POST",
      body: JSON.stringify({ nodeId: "cp-revoked" }),
    })
    const { token } = (await res.json()) as { token: string }
    await using again = startAgent(node, { nodeId: "cp-revoked", controlUrl: cp.url, joinToken: token })
    const withLog = (error: Error) => {
      throw new Error(`${error.message}\nagent log:\n${again.log()}`)
    }
    // The enrolment itself moves the node's last heartbeat up (a node enrolled again counts its silence
    // from then), so the heartbeat looked for is one after the new credential reached the disk.
    await until(
      "a new credential on disk",
      () => Bun.file(join(again.stateDir, "credential.json")).text(),
      (text) => text !== old,
    ).catch(withLog)
    const enrolledAt = await beat()
    expect(enrolledAt > revokedAt).toBe(true)
    await until("a heartbeat with the new credential", beat, (at) => at > enrolledAt).catch(withLog)
  })
})
