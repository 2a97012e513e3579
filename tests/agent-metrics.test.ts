// The agent's own metrics (`--metrics-listen`): a real agent in a test node, standalone on a desired
// closure, serves the Prometheus text format on loopback; promtool accepts it; when someone switches
// the node by hand, the drift and the heal show up in its counters and it reads congruent again.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type { StorePath } from "../protocol/ids.ts"
import { type AgentProcess, startAgent } from "./support/agent-process.ts"
import { freePort } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestNode, type TestNode, waitForSystem } from "./support/test-node.ts"
import { requireTool, run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

let gen1: StorePath
let gen2: StorePath
let node: TestNode
let agent: AgentProcess
let port: number

beforeAll(async () => {
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1), buildTestSystem(2)])
  node = await createTestNode({ name: "metrics", boot: gen1 })
  port = freePort()
  agent = startAgent(node, {
    nodeId: "m-1",
    controlUrl: "",
    extraArgs: ["--desired", gen1, "--metrics-listen", `127.0.0.1:${port}`],
  })
}, 120_000)

afterAll(async () => {
  await agent?.stop()
  await node?.stop()
})

const scrape = () =>
  fetch(`http://127.0.0.1:${port}/metrics`).then(
    (r) => (r.ok ? r.text() : ""),
    () => "",
  )
const value = (text: string, series: string) =>
  Number(
    text
      .split("\n")
      .find((l) => l.startsWith(`${series} `))
      ?.split(" ")[1] ?? Number.NaN,
  )

describe("agent --metrics-listen", () => {
  test("serves its state and counts the drift it heals; promtool accepts it", async () => {
    const withLog = (error: Error): never => {
      throw new Error(`${error.message}\nagent log:\n${agent.log()}`)
    }
    // The links are read as they change and the phase once the agent has judged them, so a scrape in
    // between may show one before the other: wait for both.
    const first = await waitFor(
      "the agent's metrics to read congruent",
      scrape,
      (t) =>
        value(t, 'chimera_agent_congruent{node="m-1"}') === 1 &&
        value(t, 'chimera_agent_phase{node="m-1",phase="congruent"}') === 1,
      30_000,
    ).catch(withLog)
    expect(value(first, 'chimera_agent_phase{node="m-1",phase="congruent"}')).toBe(1)
    expect(first).toContain('chimera_agent_build_info{node="m-1",version="0.1.0"')
    const checked = await run([requireTool("promtool"), "check", "metrics"], { stdin: first })
    expect(`${checked.code} ${checked.stdout}${checked.stderr}`).toBe("0 ")

    await node.switchTo(gen2)
    const after = await waitFor(
      "the heal to be counted",
      scrape,
      (t) =>
        value(t, 'chimera_agent_heals_total{node="m-1",outcome="succeeded"}') >= 1 &&
        value(t, 'chimera_agent_congruent{node="m-1"}') === 1,
      30_000,
    ).catch(withLog)
    expect(value(after, 'chimera_agent_drift_detected_total{node="m-1"}')).toBeGreaterThanOrEqual(1)
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404)
  }, 60_000)

  test("a metrics port another program holds does not stop the agent: it heals, and says the port is taken", async () => {
    // Any local user may take the port before the agent (re)starts; the node must go on healing.
    const squatter = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
    await using other = await createTestNode({ name: "metrics-taken", boot: gen1 })
    const held = startAgent(other, {
      nodeId: "m-2",
      controlUrl: "",
      extraArgs: ["--desired", gen1, "--metrics-listen", `127.0.0.1:${squatter.port}`],
    })
    try {
      await waitFor(
        "the agent to start and say the port is taken",
        async () => held.log(),
        (l) => l.includes('"msg":"started"') && l.includes(`127.0.0.1:${squatter.port} is in use by another program`),
        30_000,
      )
      await other.switchTo(gen2)
      await waitForSystem(other, gen1, "the node healed back", 30_000)
      expect(held.proc.exitCode).toBeNull()
    } finally {
      await held.stop()
      squatter.stop(true)
    }
  }, 90_000)
})
