// The incident rules over a real SQLite store, with events published on the real bus and time moved by
// hand: one open incident per node and problem, repeats counted, recovery resolving, watches that
// become incidents only past their threshold, and the outbox rows each step enqueues.
import { afterEach, beforeEach, describe, expect, test } from "bun:test"
import { NodeHealth } from "../../protocol/agent.ts"
import { hasControlCharacters } from "../../protocol/terminal-text.ts"
import { heartbeatBody } from "../../tests/support/auth.ts"
import { manualClock } from "../../tests/support/clock.ts"
import { openTestStore } from "../../tests/support/store.ts"
import { createEventBus } from "../adapters/event-bus.ts"
import { incidentStore } from "../adapters/store/incident-store.ts"
import { ChimeraConfig } from "../config-schema.ts"
import type { FleetEvent } from "./events.ts"
import { createFleet, type Fleet } from "./fleet.ts"
import { incidentPolicy } from "./incident-routing.ts"
import { createIncidents, type FinishedDeployment, type Incidents, REPORTED_PER_HOUR } from "./incidents.ts"
import type { EventBusPort } from "./ports.ts"

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const GEN2 = "/nix/store/pf2vqrcxgi9ii2fg0d1rk8s1d3387src-chimera-test-system-2"
const CHANNELS = ["slack", "pagerduty", "email", "jira"]

let opened: Awaited<ReturnType<typeof openTestStore>>
let bus: EventBusPort
let fleet: Fleet
let incidents: Incidents
let clock: ReturnType<typeof manualClock>
let woken = 0
let deployments: Record<string, FinishedDeployment> = {}
/** The nodes whose credential the store holds revoked. */
let revokedNodes = new Set<string>()
/** The control plane's [fleet.nodes] names; enrolled nodes are the store's. */
const CONFIGURED = ["web-1", "web-2"]

beforeEach(async () => {
  opened = await openTestStore("incidents")
  bus = createEventBus()
  revokedNodes = new Set()
  clock = manualClock(Date.parse("2026-01-01T12:00:00Z"))
  fleet = createFleet({ store: opened.store, bus, clock })
  incidents = engine()
  bus.subscribe((e) => incidents.handle(e))
})

/** The incident use cases over this test's store; `over` replaces some of their ports. */
const engine = (over: Partial<Parameters<typeof createIncidents>[0]> = {}) =>
  createIncidents({
    store: incidentStore(opened.db),
    clock,
    policy: incidentPolicy({ ...ChimeraConfig.parse({}).incidents, unreachable_after_seconds: 60 }),
    channels: CHANNELS,
    currentClosure: async (nodeId) => (nodeId === "n1" ? GEN2 : null),
    deployment: async (id) => deployments[id] ?? null,
    isNode: async (name) => CONFIGURED.includes(name) || (await fleet.findNode(name)) !== null,
    note: (type, nodeId, data) => fleet.note(type, nodeId, data),
    wake: () => void woken++,
    revoked: async (id) => revokedNodes.has(id),
    ...over,
  })

afterEach(() => opened.close())

type Reported = "heal.failed" | "heal.succeeded" | "node.unreachable" | "node.reachable"
const publish = async (type: FleetEvent["type"], nodeId: string | null, data: Record<string, unknown>) => {
  const event = await opened.store.appendEvent({ type, nodeId, at: clock.now().toISOString(), data })
  bus.publish([event])
  await incidents.settled()
}
const openProblems = async () =>
  (await incidents.list({ status: "open", limit: 100 })).map((i) => `${i.nodeId}:${i.problem}`)

const report = async (type: Reported, data = {}) => {
  const payload =
    type === "heal.failed"
      ? {
          desired: GEN1,
          attempt: 1,
          durationMs: 5,
          error: "switch-to-configuration switch exited 1",
          output: "",
          retryInMs: 1000,
        }
      : type === "heal.succeeded"
        ? { desired: GEN1, attempt: 2, durationMs: 5 }
        : data
  const event = await opened.store.appendEvent({ type, nodeId: "n1", at: clock.now().toISOString(), data: payload })
  bus.publish([event])
  await incidents.settled()
}

type Targets = FinishedDeployment["targets"]
/** A deploy the control plane ran; `reported` is one a caller reported under its principal. */
const ran = (targets: Targets): FinishedDeployment => ({ reportedBy: null, closure: GEN1, targets })
const reported = (by: string, targets: Targets): FinishedDeployment => ({ reportedBy: by, closure: GEN1, targets })
const failed = (target: string, error = "health check failed"): Targets[number] => ({
  target,
  status: "failed",
  error,
})
const deployed = (target: string): Targets[number] => ({ target, status: "deployed", error: null })
const finish = (id: string) => publish("deployment.finished", null, { id, status: "partial", closure: GEN1 })
const enrol = async (nodeId: string) => {
  const { token } = await fleet.createJoinToken({ nodeId })
  await fleet.enroll(token, { nodeId, hostname: nodeId, agentVersion: "t" })
}
const deliveriesOf = async () => (await opened.db`SELECT COUNT(*) AS n FROM incident_outbox`)[0].n as number

describe("incidents from events", () => {
  test("a node's control and bidi characters reach the notices escaped, never raw", async () => {
    const error = "switch failed: \u202ehtua/elpmaxe.oss \u001b]52;c;aGk=\u0007\rFAKE"
    const event = await opened.store.appendEvent({
      type: "heal.failed",
      nodeId: "n2",
      at: clock.now().toISOString(),
      data: { desired: GEN1, attempt: 1, durationMs: 5, error, output: "", retryInMs: 1000 },
    })
    bus.publish([event])
    await incidents.settled()
    const rows: { notice: string }[] = await opened.db`SELECT notice FROM incident_outbox`
    expect(rows.length).toBe(CHANNELS.length)
    for (const { notice } of rows) {
      const { message, title } = JSON.parse(notice) as { message: string; title: string }
      expect(message).toContain("switch failed: \\u202ehtua/elpmaxe.oss \\x1b]52;c;aGk=\\x07\\rFAKE")
      expect(hasControlCharacters(message + title)).toBe(false)
    }
  })

  test("a failed heal opens one incident; repeats update it; a heal resolves it, each step enqueued once", async () => {
    await report("heal.failed")
    await report("heal.failed")
    const open = await incidents.list({ status: "open", limit: 10 })
    expect(open).toHaveLength(1)
    expect(open[0]).toMatchObject({ nodeId: "n1", problem: "heal-failed", severity: "critical", occurrences: 2 })
    const id = open[0]?.id ?? ""
    const opened1 = await incidents.get(id)
    expect(opened1?.deliveries.map((d) => `${d.channel}:${d.step}:${d.status}`).sort()).toEqual([
      "email:opened:pending",
      "jira:opened:pending",
      "pagerduty:opened:pending",
      "slack:opened:pending",
    ])
    expect(woken).toBeGreaterThan(0)

    await report("heal.succeeded")
    expect(await incidents.list({ status: "open", limit: 10 })).toHaveLength(0)
    const resolved = await incidents.get(id)
    expect(resolved?.incident.status).toBe("resolved")
    expect(resolved?.timeline.map((t) => t.step)).toEqual(["opened", "resolved"])
    expect(
      resolved?.deliveries
        .filter((d) => d.step === "resolved")
        .map((d) => d.channel)
        .sort(),
    ).toEqual(["email", "jira", "pagerduty", "slack"])
    const stream = await fleet.listEvents({ limit: 100, types: ["incident.opened", "incident.resolved"] })
    expect(stream.map((e) => e.type)).toEqual(["incident.opened", "incident.resolved"])
    // The closure that ran when it opened is news then; at its resolution it no longer runs.
    const notices: { notice: string }[] = await opened.db`SELECT notice FROM incident_outbox WHERE channel = 'slack'`
    const closuresOf = (step: string) =>
      notices.map((r) => JSON.parse(r.notice) as { step: string; closures: object }).find((n) => n.step === step)
        ?.closures
    expect(closuresOf("opened")).toEqual({ desired: GEN1, current: GEN2 })
    expect(closuresOf("resolved")).toEqual({ desired: GEN1 })

    // A new failure after the resolution is a new incident, not the old one reopened.
    await report("heal.failed")
    const again = await incidents.list({ status: "open", limit: 10 })
    expect(again).toHaveLength(1)
    expect(again[0]?.id).not.toBe(id)
  })

  test("a repeat past update_every_seconds makes one ticket note, not a chat message", async () => {
    await report("heal.failed")
    clock.advance(901_000)
    await report("heal.failed")
    const [open] = await incidents.list({ status: "open", limit: 10 })
    const detail = await incidents.get(open?.id ?? "")
    expect(detail?.deliveries.filter((d) => d.step.startsWith("updated")).map((d) => `${d.channel}:${d.step}`)).toEqual(
      ["jira:updated-1"],
    )
    expect(detail?.timeline.map((t) => t.step)).toEqual(["opened", "updated"])
  })

  test("an unreachable node becomes an incident only once its silence passes the threshold", async () => {
    const since = new Date(clock.now().getTime() - 655).toISOString()
    await report("node.unreachable", { lastHeartbeat: since, missedHeartbeats: 3 })
    clock.advance(30_000)
    await incidents.tick()
    expect(await incidents.list({ status: "open", limit: 10 })).toHaveLength(0)
    clock.advance(31_000)
    await incidents.tick()
    await incidents.tick()
    const open = await incidents.list({ status: "open", limit: 10 })
    expect(open).toHaveLength(1)
    expect(open[0]?.problem).toBe("unreachable")
    // A person reads it, in Slack or a mail as on the dashboard: UTC, said so, to the second.
    expect(open[0]?.message).toBe("no heartbeat since 2026-01-01 11:59:59 UTC (62 s)")
    await report("node.reachable")
    expect(await incidents.list({ status: "open", limit: 10 })).toHaveLength(0)
  })

  test("a node back before the threshold leaves no incident", async () => {
    await report("node.unreachable", { lastHeartbeat: clock.now().toISOString() })
    clock.advance(10_000)
    await report("node.reachable")
    clock.advance(120_000)
    await incidents.tick()
    expect(await incidents.list({ limit: 10 })).toHaveLength(0)
  })

  test("a closure missing from the node's store is one missing-closure incident, its heal failures counted there", async () => {
    await publish("drift.detected", "n1", {
      kinds: ["profile-drift", "missing-closure"],
      desired: GEN1,
      system: { profile: null, current: null, booted: null },
    })
    await report("heal.failed")
    await publish("heal.failed", "n1", {
      desired: GEN1,
      attempt: 1,
      durationMs: 5,
      error: `${GEN1} is not in the local store and \`nix-store --realise\` could not fetch it (exit 1)`,
      output: "",
      retryInMs: 1000,
    })
    expect((await openProblems()).sort()).toEqual(["n1:heal-failed", "n1:missing-closure"])
    const missing = (await incidents.list({ status: "open", limit: 10 })).find((i) => i.problem === "missing-closure")
    expect(missing?.occurrences).toBe(2)
    await publish("drift.resolved", "n1", { desired: GEN1, system: { profile: GEN1, current: GEN1, booted: GEN1 } })
    expect(await openProblems()).toEqual([])
  })

  test("a revoked credential is an incident; the silence that follows is not another; a new enrolment resolves it", async () => {
    await publish("node.revoked", "n1", {})
    await publish("node.unreachable", "n1", { lastHeartbeat: clock.now().toISOString() })
    clock.advance(120_000)
    await incidents.tick()
    expect(await openProblems()).toEqual(["n1:credential-revoked"])
    await publish("node.enrolled", "n1", { hostname: "n1", agentVersion: "t", reenrolled: true })
    expect(await openProblems()).toEqual([])
  })

  test("a revoked node's silence opens nothing after its credential-revoked incident is resolved by hand", async () => {
    revokedNodes.add("n1")
    await publish("node.revoked", "n1", {})
    await publish("node.unreachable", "n1", { lastHeartbeat: clock.now().toISOString() })
    const [revoked] = await incidents.list({ status: "open", limit: 10 })
    await incidents.resolveByHand(revoked?.id ?? "", "alice", "retired")
    clock.advance(120_000)
    await incidents.tick()
    expect(await openProblems()).toEqual([])
  })

  test("a drift nobody heals is an incident after drift_unhealed_after_seconds; one healed in time is not", async () => {
    const drift = { kinds: ["runtime-drift"], desired: GEN1, system: { profile: GEN1, current: null, booted: null } }
    await publish("drift.detected", "n2", drift)
    await publish("drift.detected", "n1", drift)
    clock.advance(300_000)
    await publish("heal.succeeded", "n2", { desired: GEN1, attempt: 1, durationMs: 5 })
    clock.advance(301_000)
    await incidents.tick()
    const open = await incidents.list({ status: "open", limit: 10 })
    expect(open.map((i) => `${i.nodeId}:${i.problem}:${i.severity}`)).toEqual(["n1:drift-unhealed:warning"])
    const detail = await incidents.get(open[0]?.id ?? "")
    // A warning reaches chat, mail and the ticket, but pages only for the problems configured to.
    expect(detail?.deliveries.map((d) => d.channel).sort()).toEqual(["email", "jira", "slack"])
  })

  test("a deployment's failed or rolled-back target is an incident on that node until a deployment reaches it", async () => {
    deployments = {
      d1: ran([
        { target: "web-1", status: "rolled-back", error: "health check failed" },
        { target: "web-2", status: "deployed", error: null },
      ]),
      d2: ran([{ target: "web-1", status: "deployed", error: null }]),
    }
    await publish("deployment.finished", null, { id: "d1", status: "partial", closure: GEN1 })
    const [open] = await incidents.list({ status: "open", limit: 10 })
    expect(`${open?.nodeId}:${open?.problem}`).toBe("web-1:deploy-failed")
    expect(open?.message).toContain("rolled back")
    // The closure it failed to deploy is the one the incident is about.
    expect(open?.closures.desired).toBe(GEN1)
    await publish("deployment.finished", null, { id: "d2", status: "succeeded", closure: GEN1 })
    expect(await openProblems()).toEqual([])
  })

  test("a node that flaps is told about ten times an hour; past that its incidents are recorded, not sent", async () => {
    for (let i = 0; i < 12; i++) {
      await report("heal.failed")
      await report("heal.succeeded")
      clock.advance(60_000)
    }
    const all = await incidents.list({ limit: 100 })
    expect(all).toHaveLength(12)
    const details = await Promise.all(all.map((i) => incidents.get(i.id)))
    const told = details.filter((d) => (d?.deliveries.length ?? 0) > 0)
    expect(told).toHaveLength(10)
    const held = details.filter((d) => d?.deliveries.length === 0)
    expect(held.map((d) => d?.timeline[0]?.message).every((m) => m?.includes("not notified"))).toBe(true)
    clock.advance(3_600_000)
    await report("heal.failed")
    const [latest] = await incidents.list({ status: "open", limit: 1 })
    expect((await incidents.get(latest?.id ?? ""))?.deliveries.length).toBe(4)
  })

  test("resolved incidents older than the retention are pruned with their timelines; open ones stay", async () => {
    await report("heal.failed")
    await report("heal.succeeded")
    await publish("heal.failed", "n2", {
      desired: GEN1,
      attempt: 1,
      durationMs: 5,
      error: "exit 1",
      output: "",
      retryInMs: null,
    })
    // The resolved one's deliveries are still pending (no worker here): it is kept until they settle.
    clock.advance(91 * 86_400_000)
    expect(await incidents.prune(90)).toBe(0)
    await opened.db`UPDATE incident_outbox SET status = 'delivered'`
    expect(await incidents.prune(90)).toBe(1)
    expect(await openProblems()).toEqual(["n2:heal-failed"])
    expect((await opened.db`SELECT COUNT(*) AS n FROM incident_timeline`)[0].n).toBe(1)
  })
})

describe("incidents from deployments a caller reported", () => {
  test("a reported deployment's targets that are no node here open nothing and tell nobody", async () => {
    const phishing = "URGENT: your Chimera login expires, re-enter it at https://chimera-login.example"
    deployments = {
      r1: reported(
        "token:olga",
        Array.from({ length: 25 }, (_, i) => failed(`payroll-${i}.corp.example`, phishing)),
      ),
    }
    await finish("r1")
    expect(await incidents.list({ limit: 100 })).toEqual([])
    expect(await deliveriesOf()).toBe(0)
  })

  test("a reported failure on a node opens an incident its reporter's later record resolves", async () => {
    deployments = {
      r1: reported("user:olga", [failed("web-1"), failed("payroll.corp.example")]),
      r2: reported("user:olga", [deployed("web-1")]),
    }
    await finish("r1")
    const [open] = await incidents.list({ status: "open", limit: 10 })
    expect(`${open?.nodeId}:${open?.problem}`).toBe("web-1:deploy-failed")
    expect(open?.message).toContain("reported deployment r1")
    expect(await deliveriesOf()).toBe(CHANNELS.length - 1) // a warning pages nobody by default
    await finish("r2")
    expect(await openProblems()).toEqual([])
  })

  test("a record cannot resolve or rewrite an incident the control plane's deployment opened", async () => {
    deployments = {
      d1: ran([failed("web-1", "activation failed: exit 1")]),
      r1: reported("user:olga", [deployed("web-1")]),
      r2: reported("user:olga", [failed("web-1", "call +1 555 0100 to restore service")]),
      d2: ran([deployed("web-1")]),
    }
    await finish("d1")
    await finish("r1")
    await finish("r2")
    const [open] = await incidents.list({ status: "open", limit: 10 })
    expect(open).toMatchObject({ nodeId: "web-1", problem: "deploy-failed", occurrences: 1 })
    expect(open?.message).toBe("deploy failed (deployment d1): activation failed: exit 1")
    await finish("d2")
    expect(await openProblems()).toEqual([])
  })

  test("another principal's record resolves a reported incident (a colleague's fix) but cannot rewrite it", async () => {
    deployments = {
      r1: reported("user:olga", [failed("web-2", "health check failed")]),
      r2: reported("token:mallory", [failed("web-2", "call +1 555 0100 to restore service")]),
      r3: reported("user:piotr", [deployed("web-2")]),
    }
    await finish("r1")
    await finish("r2")
    const [open] = await incidents.list({ status: "open", limit: 10 })
    expect(open?.message).toBe("deploy failed (reported deployment r1): health check failed")
    await finish("r3")
    expect(await openProblems()).toEqual([])
  })

  test("once the control plane sees the failure itself, the reporter's record no longer resolves it", async () => {
    deployments = {
      r1: reported("user:olga", [failed("web-1")]),
      d1: ran([failed("web-1")]),
      r2: reported("user:olga", [deployed("web-1")]),
    }
    await finish("r1")
    await finish("d1")
    await finish("r2")
    expect(await openProblems()).toEqual(["web-1:deploy-failed"])
  })

  test(`one principal's records are told about ${REPORTED_PER_HOUR} incidents an hour; past that they are recorded, not sent`, async () => {
    const nodes = Array.from({ length: REPORTED_PER_HOUR + 5 }, (_, i) => `node-${i}`)
    for (const id of nodes) await enrol(id)
    deployments = {
      r1: reported(
        "token:noisy",
        nodes.map((n) => failed(n)),
      ),
    }
    await finish("r1")
    const all = await incidents.list({ limit: 100 })
    expect(all).toHaveLength(nodes.length)
    const details = await Promise.all(all.map((i) => incidents.get(i.id)))
    expect(details.filter((d) => (d?.deliveries.length ?? 0) > 0)).toHaveLength(REPORTED_PER_HOUR)
    const held = details.filter((d) => d?.deliveries.length === 0)
    expect(held).toHaveLength(5)
    expect(held.every((d) => d?.timeline[0]?.message.includes("same caller's deployment records"))).toBe(true)
    // Another reporter, and the control plane's own deploys, keep their own budgets.
    deployments = { r2: reported("user:olga", [failed("web-1")]), d1: ran([failed("web-2")]) }
    await finish("r2")
    await finish("d1")
    for (const node of ["web-1", "web-2"]) {
      const [i] = await incidents.list({ nodeId: node, limit: 1 })
      expect((await incidents.get(i?.id ?? ""))?.deliveries.length).toBeGreaterThan(0)
    }
    // An hour on, the noisy reporter is heard again.
    clock.advance(3_600_000)
    await enrol("node-late")
    deployments = { r3: reported("token:noisy", [failed("node-late")]) }
    await finish("r3")
    const [late] = await incidents.list({ nodeId: "node-late", limit: 1 })
    expect((await incidents.get(late?.id ?? ""))?.deliveries.length).toBeGreaterThan(0)
  })
})

describe("resolving by hand", () => {
  // The person named one incident; between the look-up and the resolution the control plane may have
  // resolved it and opened a new one for the same node and problem, which nobody has looked at yet.
  test("resolves the incident named, never a newer one the problem opened meanwhile", async () => {
    await report("heal.failed")
    const [named] = await incidents.list({ status: "open", limit: 10 })
    const store = incidentStore(opened.db)
    let raced = false
    const byHand = engine({
      store: {
        ...store,
        get: async (id) => {
          const found = await store.get(id)
          if (!raced) {
            raced = true
            await report("heal.succeeded")
            await report("heal.failed")
          }
          return found
        },
      },
      note: async () => {},
    })
    await expect(byHand.resolveByHand(named!.id, "otto", "rebuilt")).rejects.toThrow(
      "resolved already, at 2026-01-01 12:00:00 UTC: healed",
    )
    const open = await incidents.list({ status: "open", limit: 10 })
    expect(open.map((i) => i.id === named!.id)).toEqual([false])
    expect(open[0]!.status).toBe("open")
  })
})

describe("heartbeats", () => {
  // A heartbeat is held against what this control plane knows open: one that did not open the
  // incident (started since, or another replica on the same database) learns of it from the store.
  test("a control plane that did not open the incident ends it on a congruent heartbeat once it read the store", async () => {
    await report("heal.failed")
    const other = engine({ note: async () => {} })
    const congruent = NodeHealth.parse(heartbeatBody("n1"))
    other.heartbeat(congruent)
    await other.settled()
    expect(await openProblems()).toEqual(["n1:heal-failed"])
    await other.tick()
    await other.settled()
    other.heartbeat(congruent)
    await other.settled()
    expect(await openProblems()).toEqual([])
    const [resolved] = await incidents.list({ status: "resolved", limit: 10 })
    expect(resolved?.message).toStartWith("the node reported congruent")
  })
})
