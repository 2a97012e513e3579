// A node's heartbeat ends the heal-failed incident it has left behind. A real agent reports
// heal.succeeded or drift.resolved when its node converges, but one that crashed or was replaced
// between the failure and the recovery never does: its successor finds the node congruent and has
// nothing to report. The incident stayed open beside a node shown healthy. Here a real agent in a test
// node fails to heal, stops, the node is brought onto its closure by hand, and a replacement agent
// (fresh state, enrolled again) heartbeats: the incident resolves, saying why. Through the agent API
// with a real node credential: a heartbeat about another closure, or one that does not say
// congruent, leaves the incident open.
import { beforeAll, expect, test } from "bun:test"
import { rm } from "node:fs/promises"
import type { Incident, TimelineEntry } from "../control/domain/incident-model.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "./support/agent-process.ts"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { CURRENT_SYSTEM, createTestNode, waitForSystem } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

const CONGRUENT = /^the node reported congruent: its heartbeat says it runs the closure this incident was about/

let good: StorePath
let broken: StorePath

beforeAll(async () => {
  ;[good, broken] = await Promise.all([buildTestSystem(1), buildTestSystem("13", { failSwitch: true })])
}, 180_000)

const incidents = async (cp: TestControlPlane, node: string) =>
  ((await (await cp.api(`/api/incidents?node=${node}`)).json()) as { incidents: Incident[] }).incidents

const timeline = async (cp: TestControlPlane, id: string) =>
  ((await (await cp.api(`/api/incidents/${id}`)).json()) as { timeline: TimelineEntry[] }).timeline

async function joinToken(cp: TestControlPlane, nodeId: string): Promise<string> {
  const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId }) })
  return ((await res.json()) as { token: string }).token
}

test("a replaced agent's congruent heartbeats resolve the heal-failed incident its predecessor left open", async () => {
  await using cp = await startInProcess()
  await using node = await createTestNode({ name: "hb-heal", boot: good })
  const first = startAgent(node, { nodeId: "hb-heal", controlUrl: cp.url, joinToken: await joinToken(cp, "hb-heal") })
  const withLog = (agent: { log(): string }) => (error: Error) => {
    throw new Error(`${error.message}\nagent log:\n${agent.log()}`)
  }
  let incident: Incident | undefined
  try {
    await waitFor(
      "hb-heal to enrol",
      async () => (await cp.api("/api/nodes/hb-heal")).status,
      (s) => s === 200,
    )
    const put = await cp.api("/api/nodes/hb-heal/desired", { method: "PUT", body: JSON.stringify({ closure: broken }) })
    expect(put.status).toBe(200)
    ;[incident] = await waitFor(
      "a heal-failed incident about the broken closure",
      () => incidents(cp, "hb-heal"),
      (is) => is.some((i) => i.problem === "heal-failed" && i.closures.desired === broken),
      60_000,
    ).catch(withLog(first))
  } finally {
    await first.stop()
  }
  // Its switch refused after the profile was set. A person who fixed what failed finishes the
  // activation by hand (the running system's link, as the switch sets it): the node runs that closure.
  expect((await node.exec(["ln", "-sfn", broken, CURRENT_SYSTEM])).code).toBe(0)
  await waitForSystem(node, broken, "the node on the closure by hand", 10_000)

  // A replacement: fresh state (no drift remembered, nothing to report), enrolled again.
  await rm(first.stateDir, { recursive: true, force: true })
  await using second = startAgent(node, {
    nodeId: "hb-heal",
    controlUrl: cp.url,
    joinToken: await joinToken(cp, "hb-heal"),
  })
  const resolved = await waitFor(
    "the incident resolved by the replacement's heartbeats",
    async () => (await incidents(cp, "hb-heal")).find((i) => i.id === incident?.id),
    (i) => i?.status === "resolved",
    30_000,
  ).catch(withLog(second))
  expect(resolved?.message).toMatch(CONGRUENT)
  expect((await timeline(cp, incident?.id ?? "")).at(-1)?.message).toMatch(CONGRUENT)
  // The heartbeats did it: no report since the failure said the node had healed.
  const events = (
    (await (await cp.api("/api/events?node=hb-heal&limit=1000")).json()) as { events: { type: string }[] }
  ).events
  expect(events.some((e) => e.type === "heal.failed")).toBe(true)
  expect(events.filter((e) => e.type === "heal.succeeded" || e.type === "drift.resolved")).toEqual([])
  expect(second.log()).not.toContain("drift resolved")
}, 180_000)

test("a heartbeat ends only an incident about the closure it runs, and only when it says congruent", async () => {
  await using cp = await startInProcess()
  const credential = await enrollNode(cp, "hb-api")
  const beat = async (closure: string, over: { phase?: string; current?: string } = {}) => {
    const body = heartbeatBody("hb-api")
    const system = { profile: closure, current: over.current ?? closure, booted: body.system.booted }
    const res = await call(cp, credential, "POST", "/api/agent/hb-api/heartbeat", {
      ...body,
      desired: closure,
      system,
      phase: over.phase ?? "congruent",
    })
    expect(res.status).toBe(200)
  }
  let seq = 0
  const healFailed = async (closure: string) => {
    const data = { desired: closure, attempt: ++seq, durationMs: 5, error: "switch exited 4", output: "", retryInMs: 1 }
    const report = { seq, at: new Date().toISOString(), type: "heal.failed", data }
    expect((await call(cp, credential, "POST", "/api/agent/hb-api/reports", { reports: [report] })).status).toBe(200)
  }

  await beat(good)
  await healFailed(broken)
  const [incident] = await waitFor(
    "the heal-failed incident",
    () => incidents(cp, "hb-api"),
    (is) => is.length === 1,
  )
  // Congruent on the closure it ran before; on the incident's closure but healing still; and saying
  // congruent while its running system is another.
  await beat(good)
  await beat(broken, { phase: "heal-failed" })
  await beat(broken, { current: good })
  // Handled in order with the heartbeats' work: once this failure is counted, theirs is done.
  await healFailed(broken)
  const [still] = await waitFor(
    "the second failure counted",
    () => incidents(cp, "hb-api"),
    (is) => is[0]?.occurrences === 2,
  )
  expect(still?.status).toBe("open")

  await beat(broken)
  const [resolved] = await waitFor(
    "the incident resolved",
    () => incidents(cp, "hb-api"),
    (is) => is[0]?.status === "resolved",
  )
  expect(resolved?.id).toBe(incident?.id ?? "")
  expect(resolved?.message).toMatch(CONGRUENT)
})
