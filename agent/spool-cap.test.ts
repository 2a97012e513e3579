// The spool's size cap with a real agent in a test node and a real control plane that is down: the
// spool a long outage left behind (thousands of drift reports, a few failed heals) is more than the
// cap, so the agent compacts it at start; it goes on healing, offline; and once the control plane is
// back, every report is accounted for there, stored or counted in the one reports.compacted event, and
// no heal outcome is lost.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { appendFileSync, statSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AgentReport } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "../tests/support/agent-process.ts"
import { freePort, type SpawnedControlPlane, spawnControlPlane } from "../tests/support/control-plane.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestNode } from "../tests/support/test-node.ts"
import { waitFor } from "../tests/support/wait.ts"

const MiB = 1024 * 1024
const SEEDED_DRIFTS = 4000
const SEEDED_FAILURES = 4

let gen1: StorePath
let gen2: StorePath
let dataDir: string

beforeAll(async () => {
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1, { tag: "spoolcap" }), buildTestSystem(2, { tag: "spoolcap" })])
  dataDir = await mkdtemp(join(tmpdir(), "chimera-spoolcap-"))
})
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

type Event = { id: number; type: string; data: Record<string, unknown> }
async function allEvents(cp: SpawnedControlPlane, node: string): Promise<Event[]> {
  const out: Event[] = []
  for (let after = 0; ; ) {
    const res = await cp.api(`/api/events?node=${node}&limit=1000&after=${after}`)
    const page = ((await res.json()) as { events: Event[] }).events
    out.push(...page)
    if (page.length < 1000) return out
    after = page.at(-1)?.id ?? after
  }
}
const header = async (stateDir: string) =>
  JSON.parse((await Bun.file(join(stateDir, "spool.jsonl")).text()).split("\n")[0] ?? "{}") as {
    lastSeq: number
    ackedSeq: number
  }

describe("spool size cap with the control plane down", () => {
  test("a spool over the cap is compacted at start; everything is accounted for once the control plane is back", async () => {
    // The node's report quota is lifted: thousands of reports arrive at once here, by design.
    const cp = await spawnControlPlane(freePort(), {
      dataDir,
      env: { CHIMERA_LIMITS_NODE_REPORTS: "1000000", CHIMERA_LIMITS_NODE_REPORT_BYTES: String(1024 * MiB) },
    })
    await using node = await createTestNode({ name: "spoolcap", boot: gen1 })
    const { token } = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    const args = ["--desired", gen1, "--spool-max-bytes", String(MiB)]
    const first = startAgent(node, { nodeId: "cap-1", controlUrl: cp.url, joinToken: token, extraArgs: args })
    // Enrolled once the credential is on disk (the control plane knows the node a moment earlier).
    await waitFor(
      "the credential stored",
      () => Bun.file(join(first.stateDir, "credential.json")).exists(),
      (stored) => stored,
      30_000,
    )
    expect(await first.stop()).toBe(0)
    await cp.kill()

    // What a long outage leaves in the spool, in its own format: drifts, and a few failed heals among them.
    const spoolFile = join(first.stateDir, "spool.jsonl")
    const base = (await header(first.stateDir)).lastSeq
    const failedSeqs: number[] = []
    const lines: string[] = []
    for (let i = 1; i <= SEEDED_DRIFTS + SEEDED_FAILURES; i++) {
      const seq = base + i
      const at = new Date(Date.now() - 3_600_000 + i).toISOString()
      const failure = i % 1000 === 500
      if (failure) failedSeqs.push(seq)
      const report: AgentReport = failure
        ? {
            seq,
            at,
            type: "heal.failed",
            data: { desired: gen1, attempt: i, durationMs: 5, error: "switch failed", output: "", retryInMs: 1000 },
          }
        : {
            seq,
            at,
            type: "drift.detected",
            data: { kinds: ["profile-drift"], desired: gen1, system: { profile: gen2, current: gen1, booted: gen1 } },
          }
      lines.push(JSON.stringify(report))
    }
    expect(failedSeqs).toHaveLength(SEEDED_FAILURES)
    appendFileSync(spoolFile, `${lines.join("\n")}\n`)
    expect(statSync(spoolFile).size).toBeGreaterThan(MiB)

    let cpUp = false
    const agent = startAgent(node, { nodeId: "cap-1", controlUrl: cp.url, extraArgs: args })
    try {
      await waitFor(
        "compaction at start",
        async () => agent.log(),
        (l) => l.includes("spool over its size cap"),
        30_000,
      )
      expect(statSync(spoolFile).size).toBeLessThanOrEqual(MiB)
      // Offline, the agent still heals, and spools what it did.
      await node.switchTo(gen2)
      await waitFor(
        "the node healed back to gen1",
        () => node.links(),
        (l) => l.current === gen1,
        60_000,
      )
      await cp.restart()
      cpUp = true
      const done = await waitFor(
        "the spool delivered",
        () => header(agent.stateDir),
        (h) => h.ackedSeq === h.lastSeq && h.lastSeq > base + SEEDED_DRIFTS + SEEDED_FAILURES,
        120_000,
      )
      const events = await allEvents(cp, "cap-1")
      const summaries = events.filter((e) => e.type === "reports.compacted")
      expect(summaries).toHaveLength(1)
      const summary = summaries[0]?.data as { dropped: number; criticalDropped: number; byType: Record<string, number> }
      expect(summary.criticalDropped).toBe(0)
      expect(Object.keys(summary.byType)).toEqual(["drift.detected"])
      // Every seeded report is stored or counted; every failed heal is stored; the live heal arrived.
      const seededStored = events.filter(
        (e) =>
          typeof e.data.seq === "number" &&
          e.data.seq > base &&
          e.data.seq <= base + SEEDED_DRIFTS + SEEDED_FAILURES &&
          e.type !== "reports.compacted",
      )
      expect(seededStored.length + summary.dropped).toBe(SEEDED_DRIFTS + SEEDED_FAILURES)
      const storedFailures = events.filter((e) => e.type === "heal.failed").map((e) => e.data.seq)
      expect(storedFailures).toEqual(failedSeqs)
      expect(events.some((e) => e.type === "heal.succeeded" && (e.data.seq as number) > base)).toBe(true)
      const seqs = events.flatMap((e) => (typeof e.data.seq === "number" ? [e.data.seq] : []))
      expect(new Set(seqs).size).toBe(seqs.length)
      expect(Math.max(...seqs)).toBe(done.lastSeq)
      expect(await agent.stop()).toBe(0)
    } catch (error) {
      await agent.stop()
      throw new Error(`${(error as Error).message}\nagent log:\n${agent.log().slice(-6000)}`)
    } finally {
      if (cpUp) await cp.stop()
    }
  }, 300_000)
})
