// The agent on real Nix inside a test node (a private mount namespace with its own /run and profiles):
// it runs standalone (no control plane) with an explicit desired closure, and what it reported is read
// back from its spool, the same file it would send.
import { beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { Subprocess } from "bun"
import type { AgentReport } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { absentStorePath, buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestNode, type TestNode } from "../tests/support/test-node.ts"

const MAIN = join(import.meta.dir, "main.ts")

let gen1: StorePath
let gen2: StorePath
let broken: StorePath

beforeAll(async () => {
  ;[gen1, gen2, broken] = await Promise.all([
    buildTestSystem(1, { tag: "agent" }),
    buildTestSystem(2, { tag: "agent" }),
    buildTestSystem(3, { tag: "agent", failSwitch: true }),
  ])
})

interface RunningAgent extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe" | "inherit" | "ignore", "pipe" | "inherit" | "ignore">
  stateDir: string
  logs(): string
  reports(): Promise<AgentReport[]>
  waitFor(pred: (reports: AgentReport[]) => boolean, ms?: number): Promise<AgentReport[]>
  stop(): Promise<number>
}

async function startAgent(node: TestNode, args: string[]): Promise<RunningAgent> {
  const stateDir = join(node.dir, "state")
  const proc = node.spawn([process.execPath, MAIN, "--node-id", node.name, "--state-dir", stateDir, ...args], {
    env: { CHIMERA_URL: "", CHIMERA_JOIN_TOKEN: "" },
  })
  let stderr = ""
  void (async () => {
    if (!(proc.stderr instanceof ReadableStream)) return
    for await (const chunk of proc.stderr) stderr += new TextDecoder().decode(chunk)
  })()
  const reports = async (): Promise<AgentReport[]> => {
    const file = Bun.file(join(stateDir, "spool.jsonl"))
    if (!(await file.exists())) return []
    const lines = (await file.text()).split("\n").filter(Boolean)
    return lines.map((l) => JSON.parse(l)).filter((r) => "seq" in r)
  }
  const waitFor = async (pred: (r: AgentReport[]) => boolean, ms = 5000) => {
    const until = Date.now() + ms
    for (;;) {
      const r = await reports()
      if (pred(r)) return r
      if (Date.now() > until) throw new Error(`timed out; reports: ${JSON.stringify(r)}\nlogs:\n${stderr}`)
      await Bun.sleep(25)
    }
  }
  for (let i = 0; !stderr.includes('"msg":"started"'); i++) {
    if (proc.exitCode !== null || i > 400) throw new Error(`agent did not start:\n${stderr}`)
    await Bun.sleep(25)
  }
  const stop = async () => {
    proc.kill("SIGTERM")
    return await proc.exited
  }
  return {
    proc,
    stateDir,
    logs: () => stderr,
    reports,
    waitFor,
    stop,
    [Symbol.asyncDispose]: async () => void (await stop()),
  }
}

async function waitForLinks(node: TestNode, closure: StorePath, ms = 3000): Promise<number> {
  const t0 = performance.now()
  for (;;) {
    const l = await node.links()
    if (l.profile === closure && l.current === closure) return performance.now() - t0
    if (performance.now() - t0 > ms) throw new Error(`node still on ${JSON.stringify(l)}, expected ${closure}`)
    await Bun.sleep(20)
  }
}

const types = (r: AgentReport[]) => r.map((x) => x.type)

describe("agent in a test node", () => {
  test("heals a hand-made switch back to the desired closure: profile and current", async () => {
    await using node = await createTestNode({ name: "heal", boot: gen1 })
    await using agent = await startAgent(node, ["--desired", gen1])
    await node.switchTo(gen2)
    const ms = await waitForLinks(node, gen1)
    expect(ms).toBeLessThan(3000)
    // A hand-made switch moves two links, a moment apart: the agent sees them together (one drift naming
    // both kinds, one heal) or, on a busy machine, the profile first, and its heal may overtake the rest
    // of the switch. Either way every drift seen is healed, names the hand-made closure, and nothing fails.
    const count = (r: AgentReport[], type: string) => types(r).filter((t) => t === type).length
    const r = await agent.waitFor(
      (x) => types(x).at(-1) === "heal.succeeded" && count(x, "drift.detected") === count(x, "heal.succeeded"),
    )
    const drifts = r.flatMap((x) => (x.type === "drift.detected" ? [x.data] : []))
    expect(drifts.length).toBeGreaterThanOrEqual(1)
    const kinds = new Set(drifts.flatMap((d) => d.kinds))
    expect([...kinds].filter((k) => k !== "profile-drift" && k !== "runtime-drift")).toEqual([])
    expect(drifts.some((d) => d.system.current === gen2 || d.system.profile === gen2)).toBe(true)
    expect(types(r)).not.toContain("heal.failed")
    expect(types(r).slice(0, 3)).toEqual(["drift.detected", "heal.started", "heal.succeeded"])
    expect(r.map((x) => x.seq)).toEqual(r.map((_, i) => i + 1))
  })

  test("a push deploy's hold keeps the agent from undoing it until the hold expires", async () => {
    await using node = await createTestNode({ name: "hold", boot: gen1 })
    await using agent = await startAgent(node, ["--desired", gen1])
    const until = Math.ceil(Date.now() / 1000) + 2
    const hold = await node.exec([
      "sh",
      "-c",
      `mkdir -p /run/chimera && echo "${until} deploy-1" > /run/chimera/deploy-hold`,
    ])
    expect(hold.code).toBe(0)
    await node.switchTo(gen2)
    await Bun.sleep(700)
    expect((await node.links()).current).toBe(gen2)
    expect(types(await agent.reports())).toEqual([])
    // Once the hold has passed, the desired closure is enforced again.
    await waitForLinks(node, gen1, 5000)
    expect(Date.now()).toBeGreaterThanOrEqual((until - 1) * 1000)
  })

  test("a hold further out than any deploy can ask for is ignored: healing is never switched off for good", async () => {
    await using node = await createTestNode({ name: "forged-hold", boot: gen1 })
    await using agent = await startAgent(node, ["--desired", gen1])
    const hold = await node.exec([
      "sh",
      "-c",
      "mkdir -p /run/chimera && echo '99999999999 forged' > /run/chimera/deploy-hold",
    ])
    expect(hold.code).toBe(0)
    await node.switchTo(gen2)
    await waitForLinks(node, gen1)
    expect(agent.logs()).not.toContain("holds this node")
  })

  test("heals runtime drift from `switch-to-configuration test` without touching the profile", async () => {
    await using node = await createTestNode({ name: "runtime", boot: gen1 })
    await using agent = await startAgent(node, ["--desired", gen1])
    // What `nixos-rebuild test` does: activate without touching the profile.
    const activated = await node.exec([`${gen2}/bin/switch-to-configuration`, "test"])
    expect(activated.code).toBe(0)
    await waitForLinks(node, gen1)
    const r = await agent.waitFor((x) => types(x).includes("heal.succeeded"))
    expect(types(r)).toEqual(["drift.detected", "heal.started", "heal.succeeded"])
    expect(r[0]?.type === "drift.detected" && r[0].data.kinds).toEqual(["runtime-drift"])
    // No new generation: the heal skipped `nix-env --set` because the profile was right.
    const generations = [
      ...new Bun.Glob("system-*-link").scanSync({ cwd: join(node.dir, "profiles"), onlyFiles: false }),
    ]
    expect(generations).toEqual(["system-1-link"])
  })

  test("a failing activation is reported with its output and retried with backoff, not in a loop", async () => {
    await using node = await createTestNode({ name: "broken", boot: gen1 })
    await using agent = await startAgent(node, ["--desired", broken])
    const r = await agent.waitFor((x) => types(x).includes("heal.failed"))
    const failed = r.find((x) => x.type === "heal.failed")
    if (failed?.type !== "heal.failed") throw new Error("no heal.failed")
    expect(failed.data.error).toContain("switch-to-configuration switch exited 4")
    expect(failed.data.output).toContain("activation of generation 3 failed")
    expect(failed.data.retryInMs).toBeGreaterThanOrEqual(1000)
    expect(failed.data.attempt).toBe(1)
    await Bun.sleep(800)
    expect(types(await agent.reports()).filter((t) => t === "heal.started")).toHaveLength(1)
    const second = await agent.waitFor((x) => types(x).filter((t) => t === "heal.failed").length >= 2, 8000)
    const retry = second.filter((x) => x.type === "heal.failed").at(-1)
    expect(retry?.type === "heal.failed" && retry.data.attempt).toBe(2)
    expect((await node.links()).current).toBe(gen1)
  })

  test("a desired closure absent from the store is a missing closure, reported with a clear error", async () => {
    await using node = await createTestNode({ name: "missing", boot: gen1 })
    const absent = absentStorePath()
    await using agent = await startAgent(node, ["--desired", absent])
    const r = await agent.waitFor((x) => types(x).includes("heal.failed"), 15_000)
    const drift = r.find((x) => x.type === "drift.detected")
    expect(drift?.type === "drift.detected" && drift.data.kinds).toContain("missing-closure")
    const failed = r.find((x) => x.type === "heal.failed")
    expect(failed?.type === "heal.failed" && failed.data.error).toContain("is not in the local store")
    expect(failed?.type === "heal.failed" && failed.data.retryInMs).toBeGreaterThan(0)
    expect(await node.links()).toEqual({ profile: gen1, current: gen1, booted: gen1 })
  })

  test("with --no-auto-heal drift is reported, not healed, and a manual fix reports drift.resolved", async () => {
    await using node = await createTestNode({ name: "noheal", boot: gen1 })
    await using agent = await startAgent(node, ["--desired", gen1, "--no-auto-heal"])
    await node.switchTo(gen2)
    await agent.waitFor((x) => types(x).includes("drift.detected"))
    await Bun.sleep(300)
    expect((await node.links()).current).toBe(gen2)
    await node.switchTo(gen1)
    const r = await agent.waitFor((x) => types(x).includes("drift.resolved"))
    // Drift is reported (once, or once per link when the agent sees the two links move apart), never
    // healed, and the manual fix resolves it.
    expect(types(r).at(-1)).toBe("drift.resolved")
    expect(new Set(types(r).slice(0, -1))).toEqual(new Set(["drift.detected"]))
  })

  // The control plane watches a told drift until the agent says it ended: an agent restarted meanwhile
  // (by hand, or by the switch of its own heal, which restarts chimera-agent.service) must still say so.
  test("a drift told before a restart and gone after it is reported resolved by the restarted agent", async () => {
    await using node = await createTestNode({ name: "resolved", boot: gen1 })
    const first = await startAgent(node, ["--desired", gen1, "--no-auto-heal"])
    await node.switchTo(gen2)
    await first.waitFor((x) => types(x).includes("drift.detected"))
    expect(await first.stop()).toBe(0)
    await node.switchTo(gen1)
    await using second = await startAgent(node, ["--no-auto-heal"])
    const r = await second.waitFor((x) => types(x).includes("drift.resolved"))
    expect(new Set(types(r).slice(0, -1))).toEqual(new Set(["drift.detected"]))
  })

  test("a drift.json it cannot read is set aside: the agent starts and reports drift as it finds it", async () => {
    await using node = await createTestNode({ name: "told-bad", boot: gen1 })
    const first = await startAgent(node, ["--desired", gen1, "--no-auto-heal"])
    expect(await first.stop()).toBe(0)
    await Bun.write(join(first.stateDir, "drift.json"), "{ not json")
    await node.switchTo(gen2)
    await using second = await startAgent(node, ["--no-auto-heal"])
    await second.waitFor((x) => types(x).includes("drift.detected"))
  })

  test("the desired closure survives a restart, and SIGTERM exits 0", async () => {
    await using node = await createTestNode({ name: "restart", boot: gen1 })
    const first = await startAgent(node, ["--desired", gen1])
    expect(await first.stop()).toBe(0)
    await node.switchTo(gen2)
    await using second = await startAgent(node, [])
    await waitForLinks(node, gen1)
    const r = await second.waitFor((x) => types(x).includes("heal.succeeded"))
    expect(r.map((x) => x.seq)).toEqual(r.map((_, i) => i + 1))
  })
})
