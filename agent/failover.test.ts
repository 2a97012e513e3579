// A real agent given two control-plane URLs, inside a test node. Two control planes cannot share one
// SQLite database while both run, so the second replica here is a control plane started on the first
// one's data after the first was SIGKILLed, on another port: the agent must leave the dead replica on
// its own, keep healing meanwhile, and, once the other answers, heartbeat there and replay its spool
// so that every report it ever made is stored once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "../tests/support/agent-process.ts"
import { freePort, type SpawnedControlPlane, spawnControlPlane } from "../tests/support/control-plane.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestNode, waitForSystem } from "../tests/support/test-node.ts"
import { waitFor } from "../tests/support/wait.ts"

let gen1: StorePath
let gen2: StorePath
let dataDir: string

beforeAll(async () => {
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1, { tag: "failover" }), buildTestSystem(2, { tag: "failover" })])
  dataDir = await mkdtemp(join(tmpdir(), "chimera-failover-"))
})
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

type Event = { type: string; data: { seq?: number } & Record<string, unknown> }
const events = async (cp: SpawnedControlPlane, id: string): Promise<Event[]> => {
  const res = await cp.api(`/api/events?node=${id}&limit=1000`).catch(() => null)
  return res?.ok ? ((await res.json()) as { events: Event[] }).events : []
}
const lastHeartbeat = async (cp: SpawnedControlPlane, id: string): Promise<string | null> => {
  const res = await cp.api(`/api/nodes/${id}`).catch(() => null)
  return res?.ok ? ((await res.json()) as { lastHeartbeat: string | null }).lastHeartbeat : null
}
/**
 * The spool as the agent reads it back: the header line, then a line per report appended since (the
 * header is rewritten only on an acknowledgement), so the last sequence issued is the higher of both.
 */
const spoolHeader = async (stateDir: string) => {
  const [first, ...rest] = (await Bun.file(join(stateDir, "spool.jsonl")).text()).split("\n").filter(Boolean)
  const header = JSON.parse(first ?? "{}") as { lastSeq: number; ackedSeq: number }
  const seqs = rest.map((line) => (JSON.parse(line) as { seq: number }).seq)
  return { lastSeq: Math.max(header.lastSeq, ...seqs), ackedSeq: header.ackedSeq }
}

describe("agent failover between control-plane replicas", () => {
  test("the agent leaves a SIGKILLed replica for the next URL, heartbeats there and replays its spool", async () => {
    const [portA, portB] = [freePort(), freePort()]
    const a = await spawnControlPlane(portA, { dataDir })
    let b: SpawnedControlPlane | null = null
    await using node = await createTestNode({ name: "failover", boot: gen1 })
    const tokenRes = await a.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
    const { token } = (await tokenRes.json()) as { token: string }
    const agent = startAgent(node, {
      nodeId: "fo-1",
      controlUrl: `${a.url},${`http://127.0.0.1:${portB}`}`,
      joinToken: token,
    })
    try {
      // On A: a desired closure, healed and reported.
      await waitFor(
        "enrolment through A",
        async () => (await a.api("/api/nodes/fo-1")).status,
        (s) => s === 200,
      )
      const put = await a.api("/api/nodes/fo-1/desired", { method: "PUT", body: JSON.stringify({ closure: gen2 }) })
      expect(put.status).toBe(200)
      await waitFor(
        "heal.succeeded stored by A",
        () => events(a, "fo-1"),
        (es) => es.some((e) => e.type === "heal.succeeded"),
        60_000,
      )
      const ackedOnA = (await spoolHeader(agent.stateDir)).ackedSeq
      expect(ackedOnA).toBeGreaterThan(0)

      // A dies without a word. The node drifts meanwhile: the agent heals and spools the reports.
      await a.kill()
      await node.switchTo(gen1)
      await waitForSystem(node, gen2, "the agent healing back to gen2 with no control plane", 60_000)
      await waitFor(
        "the agent moving off the dead replica",
        async () => agent.log(),
        (log) => log.includes("moving to the next"),
        60_000,
      )
      // The heal's reports reach the spool a moment after the profile changes: wait for them.
      const spooled = await waitFor(
        "the heal's reports spooled while no replica answers",
        () => spoolHeader(agent.stateDir),
        (h) => h.lastSeq > h.ackedSeq,
        60_000,
      )

      // B comes up on A's data, on another port; the agent finds it by itself.
      b = await spawnControlPlane(portB, { dataDir })
      const startedB = new Date().toISOString()
      const replica = b
      await waitFor(
        "a heartbeat received by B",
        () => lastHeartbeat(replica, "fo-1"),
        (at) => at !== null && at > startedB,
        60_000,
      )
      const after = await waitFor(
        "the spool replayed to B",
        () => spoolHeader(agent.stateDir),
        (h) => h.ackedSeq === h.lastSeq && h.lastSeq >= spooled.lastSeq,
        60_000,
      )
      // Every report the agent made, before and after the kill, is stored exactly once.
      const seqs = (await events(replica, "fo-1")).flatMap((e) => (typeof e.data.seq === "number" ? [e.data.seq] : []))
      const upTo = seqs.filter((q) => q <= after.lastSeq).sort((x, y) => x - y)
      expect(upTo).toEqual(Array.from({ length: after.lastSeq }, (_, i) => i + 1))
      // And it stays with B: a second heartbeat there, and B's API shows the node heartbeating.
      const first = await lastHeartbeat(replica, "fo-1")
      await waitFor(
        "another heartbeat on B",
        () => lastHeartbeat(replica, "fo-1"),
        (at) => at !== null && first !== null && at > first,
        30_000,
      )
      expect(await agent.stop()).toBe(0)
    } catch (error) {
      await agent.stop()
      throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
    } finally {
      await a.kill().catch(() => {})
      await b?.stop()
    }
  }, 240_000)
})
