// The core fleet loop with real parts (drift healed on the node; reports that survive a killed control
// plane): real Nix closures, an agent inside a test node (its own /run and system profile), and a real
// control plane over HTTP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { hashOf, type StorePath } from "../protocol/ids.ts"
import { type AgentProcess, startAgent } from "./support/agent-process.ts"
import { freePort, spawnControlPlane, startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestNode, type TestNode, waitForSystem } from "./support/test-node.ts"
import { runOk } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

interface NodeView {
  status: string
  desiredHash: string | null
  currentHash: string | null
  profileHash: string | null
}
interface EventView {
  id: number
  type: string
  at: string
  data: { seq?: number; desired?: string; kinds?: string[] }
}

let gen1: StorePath
let gen2: StorePath
let gen3: StorePath
let binDir: string
let compiledAgent: string

beforeAll(async () => {
  ;[gen1, gen2, gen3] = await Promise.all([buildTestSystem(1), buildTestSystem(2), buildTestSystem(3)])
  binDir = await mkdtemp(join(tmpdir(), "chimera-bin-"))
  compiledAgent = join(binDir, "chimera-agent")
  // Built as `bun run build` builds what a NixOS node runs (scripts/build.ts).
  await runOk([
    process.execPath,
    join(import.meta.dir, "../scripts/build.ts"),
    "--outdir",
    binDir,
    "--program",
    "chimera-agent",
  ])
}, 180_000)

afterAll(async () => {
  await rm(binDir, { recursive: true, force: true })
})

async function joinToken(cp: TestControlPlane): Promise<string> {
  const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
  expect(res.status).toBe(201)
  return ((await res.json()) as { token: string }).token
}

const nodeView = async (cp: TestControlPlane, id: string) =>
  (await (await cp.api(`/api/nodes/${id}`)).json()) as NodeView
const events = async (cp: TestControlPlane, id: string) =>
  ((await (await cp.api(`/api/events?node=${id}&limit=1000`)).json()) as { events: EventView[] }).events

/** Enrols an agent in `node`, sets gen1 as desired and waits until the control plane sees it healthy. */
async function enrolOnGen1(cp: TestControlPlane, node: TestNode, id: string, binary?: string): Promise<AgentProcess> {
  const agent = startAgent(node, { nodeId: id, controlUrl: cp.url, joinToken: await joinToken(cp), binary })
  try {
    await waitFor(
      `${id} to enrol`,
      async () => (await cp.api(`/api/nodes/${id}`)).status,
      (s) => s === 200,
    )
    const put = await cp.api(`/api/nodes/${id}/desired`, { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
    expect(put.status).toBe(200)
    await waitFor(
      `${id} healthy on gen1`,
      () => nodeView(cp, id),
      (n) => n.status === "healthy",
    )
    // The node booted gen1, so it looks healthy before the agent has even taken gen1 as its desired
    // closure: a manual switch before that is undone by the activation, not detected as drift.
    await waitFor(
      `${id}'s agent to acknowledge gen1`,
      () => events(cp, id),
      (es) => es.some((e) => e.type === "command.acked"),
    )
  } catch (error) {
    await agent.stop()
    throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
  }
  return agent
}

async function driftIsHealed(cp: TestControlPlane, node: TestNode, id: string, agent: AgentProcess) {
  const before = (await events(cp, id)).at(-1)?.id ?? 0
  // An operator activates generation 2 by hand.
  await node.switchTo(gen2)
  try {
    await waitForSystem(node, gen1, "the agent to heal the node back to gen1", 10_000)
    const view = await waitFor(
      "the control plane to see the node healthy",
      () => nodeView(cp, id),
      (n) => n.status === "healthy",
    )
    expect(view.currentHash).toBe(hashOf(gen1))
    expect(view.currentHash).toBe(view.desiredHash)
    const after = await waitFor(
      "drift.detected and heal.succeeded events",
      async () => (await events(cp, id)).filter((e) => e.id > before),
      (es) => es.some((e) => e.type === "heal.succeeded"),
    )
    const drift = after.find((e) => e.type === "drift.detected")
    const healed = after.find((e) => e.type === "heal.succeeded")
    expect(drift?.data.kinds).toContain("profile-drift")
    expect(drift?.data.desired).toBe(gen1)
    expect(healed?.data.desired).toBe(gen1)
    expect(Date.parse(drift?.at ?? "")).toBeLessThanOrEqual(Date.parse(healed?.at ?? ""))
    expect(Number.isNaN(Date.parse(healed?.at ?? ""))).toBe(false)
  } catch (error) {
    throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
  }
}

describe("drift detection and self-healing", () => {
  test("the agent heals a manual switch to another generation, and the control plane shows it healthy", async () => {
    await using cp = await startInProcess()
    await using node = await createTestNode({ name: "heal-src", boot: gen1 })
    await using agent = await enrolOnGen1(cp, node, "heal-src")
    await driftIsHealed(cp, node, "heal-src", agent)
  })

  test("the compiled dist/chimera-agent does the same", async () => {
    await using cp = await startInProcess()
    await using node = await createTestNode({ name: "heal-bin", boot: gen1 })
    await using agent = await enrolOnGen1(cp, node, "heal-bin", compiledAgent)
    await driftIsHealed(cp, node, "heal-bin", agent)
    // It executed itself again without Bun's GC timer and the optimising JIT (same pid: the
    // environment it was started with is the second one's), and its commands inherit neither.
    const environ = (await Bun.file(`/proc/${agent.proc.pid}/environ`).text()).split("\0")
    expect(environ).toContain("BUN_GC_TIMER_DISABLE=1")
    expect(environ).toContain("BUN_JSC_useDFGJIT=false")
    const ran = await cp.api("/api/fleet/run", {
      method: "POST",
      body: JSON.stringify({
        command: "env | grep -c 'BUN_GC_TIMER\\|BUN_JSC\\|CHIMERA_AGENT_RUNTIME' || true",
        nodes: ["heal-bin"],
        timeout: 10,
      }),
    })
    const { results } = (await ran.json()) as { results: { status: string; stdout: string }[] }
    expect(results.map((r) => [r.status, r.stdout.trim()])).toEqual([["ok", "0"]])
    expect(await agent.stop()).toBe(0)
  })
})

describe("durability", () => {
  test("reports made while the control plane is SIGKILLed arrive after its restart, in order, none twice", async () => {
    await using cp = await spawnControlPlane(freePort())
    await using node = await createTestNode({ name: "spool", boot: gen1 })
    await using agent = await enrolOnGen1(cp, node, "spool")
    const seenBefore = await events(cp, "spool")
    const lastSeqBefore = Math.max(0, ...seenBefore.map((e) => e.data.seq ?? 0))

    await cp.kill()
    // Two drifts, each healed by the agent alone while nobody listens.
    for (const wrong of [gen2, gen3]) {
      await node.switchTo(wrong)
      await waitForSystem(node, gen1, "a heal while the control plane is down", 10_000)
    }
    await cp.restart()

    const arrived = await waitFor(
      "the spooled reports to be replayed",
      async () => (await events(cp, "spool")).filter((e) => (e.data.seq ?? 0) > lastSeqBefore),
      (es) => es.filter((e) => e.type === "heal.succeeded").length >= 2,
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nagent log:\n${agent.log()}`)
    })
    const seqs = arrived.map((e) => e.data.seq ?? 0)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    expect(new Set(seqs).size).toBe(seqs.length)
    // Contiguous: nothing between the last report before the kill and the last one after is missing.
    expect(seqs[0]).toBe(lastSeqBefore + 1)
    expect(seqs.at(-1)! - seqs[0]! + 1).toBe(seqs.length)
    const types = arrived.map((e) => e.type).filter((t) => t.startsWith("drift.detected") || t.startsWith("heal."))
    expect(types).toEqual([
      "drift.detected",
      "heal.started",
      "heal.succeeded",
      "drift.detected",
      "heal.started",
      "heal.succeeded",
    ])
    await waitFor(
      "the node healthy after the restart",
      () => nodeView(cp, "spool"),
      (n) => n.status === "healthy",
    )
  })
})
