// The delivery worker over a real SQLite outbox and a local Slack that checks the webhook's format: a
// row that cannot be read back fails alone, with its reason, and the deliveries behind it go out.
import { afterEach, beforeEach, expect, test } from "bun:test"
import { type SlackFake, startSlack } from "../../tests/support/notify-servers.ts"
import { openTestStore } from "../../tests/support/store.ts"
import { waitFor } from "../../tests/support/wait.ts"
import { createEventBus } from "../adapters/event-bus.ts"
import { channelsFromConfig } from "../adapters/notify/index.ts"
import { incidentStore } from "../adapters/store/incident-store.ts"
import { outboxStore } from "../adapters/store/outbox-store.ts"
import { loadConfig } from "../config.ts"
import { ChimeraConfig } from "../config-schema.ts"
import { createDeliveryWorker } from "./delivery-worker.ts"
import { createFleet } from "./fleet.ts"
import { incidentPolicy } from "./incident-routing.ts"
import { createIncidents } from "./incidents.ts"
import { systemClock } from "./ports.ts"

let opened: Awaited<ReturnType<typeof openTestStore>>
let slack: SlackFake

beforeEach(async () => {
  opened = await openTestStore("delivery")
  slack = startSlack()
})
afterEach(async () => {
  await slack.stop()
  await opened.close()
})

test("an unreadable outbox row fails alone and the deliveries behind it go out", async () => {
  const bus = createEventBus()
  const fleet = createFleet({ store: opened.store, bus, clock: systemClock })
  const notify = channelsFromConfig(loadConfig({ env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl } }))
  const worker = createDeliveryWorker({ outbox: outboxStore(opened.db), channels: notify, clock: systemClock })
  const incidents = createIncidents({
    store: incidentStore(opened.db),
    clock: systemClock,
    policy: incidentPolicy(ChimeraConfig.parse({}).incidents),
    channels: ["slack"],
    currentClosure: async () => null,
    deployment: async () => null,
    isNode: async () => false,
    note: (type, nodeId, data) => fleet.note(type, nodeId, data),
    wake: () => worker.wake(),
  })
  bus.subscribe((e) => incidents.handle(e))
  const fail = {
    desired: "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-x",
    attempt: 1,
    durationMs: 1,
    error: "x",
    output: "",
    retryInMs: null,
  }
  for (const node of ["bad", "good"])
    bus.publish([
      await opened.store.appendEvent({ type: "heal.failed", nodeId: node, at: new Date().toISOString(), data: fail }),
    ])
  await incidents.settled()
  await opened.db`UPDATE incident_outbox SET notice = '{"not": "a notice"}' WHERE incident_id IN (SELECT id FROM incidents WHERE node_id = 'bad')`

  await worker.start(true)
  try {
    const list = await waitFor(
      "both deliveries settled",
      () => incidents.list({ limit: 10 }),
      (is) => is.every((i) => i.undelivered === 0),
    )
    const byNode = Object.fromEntries(list.map((i) => [i.nodeId, i]))
    expect(byNode.bad?.failed).toBe(1)
    expect(byNode.good?.failed).toBe(0)
    const bad = await incidents.get(byNode.bad?.id ?? "")
    expect(bad?.deliveries[0]?.lastError).toBe("the stored notice is unreadable")
    expect(slack.messages()).toHaveLength(1)
  } finally {
    await worker.stop()
  }
})
