// The incident rules over a real SQLite store, with events published on the real bus and time moved by
// hand: one open incident per node and problem, repeats counted, recovery resolving, watches that
// become incidents only past their threshold, and the outbox rows each step enqueues.
import { afterEach, beforeEach, describe, expect, test } from "bun:test"
import { manualClock } from "../../tests/support/clock.ts"
import { openTestStore } from "../../tests/support/store.ts"
import { createEventBus } from "../adapters/event-bus.ts"
import { incidentStore } from "../adapters/store/incident-store.ts"
import { ChimeraConfig } from "../config.ts"
import { createFleet, type Fleet } from "./fleet.ts"
import { incidentPolicy } from "./incident-routing.ts"
import { createIncidents, type Incidents } from "./incidents.ts"
import type { EventBusPort } from "./ports.ts"

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const CHANNELS = ["slack", "pagerduty", "email", "jira"]

let opened: Awaited<ReturnType<typeof openTestStore>>
let bus: EventBusPort
let fleet: Fleet
let incidents: Incidents
let clock: ReturnType<typeof manualClock>
let woken = 0

beforeEach(async () => {
  opened = await openTestStore("incidents")
  bus = createEventBus()
  clock = manualClock(Date.parse("2026-01-01T12:00:00Z"))
  fleet = createFleet({ store: opened.store, bus, clock })
  const settings = { ...ChimeraConfig.parse({}).incidents, unreachable_after_seconds: 60 }
  incidents = createIncidents({
    store: incidentStore(opened.db),
    bus,
    clock,
    policy: incidentPolicy(settings),
    channels: CHANNELS,
    currentClosure: async () => null,
    deploymentTargets: async () => null,
    note: (type, nodeId, data) => fleet.note(type, nodeId, data),
    wake: () => void woken++,
  })
  bus.subscribe((e) => incidents.handle(e))
})

afterEach(() => opened.close())

const report = async (type: "heal.failed" | "heal.succeeded" | "node.unreachable" | "node.reachable", data = {}) => {
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

describe("incidents from events", () => {
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
    const since = clock.now().toISOString()
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
    expect(open[0]?.message).toContain(since)
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
})
