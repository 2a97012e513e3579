// Incidents and their outbox on PostgreSQL (the store several replicas share): the partial unique
// index, the leases and the JSON and BIGINT columns behave as on SQLite. A node's heal fails twice
// and then succeeds: one incident, its opening and resolution in Slack and PagerDuty once each, and
// the same dedup_key for the trigger and the resolve.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { loadConfig } from "../control/config.ts"
import type { Delivery, Incident } from "../control/domain/incident-model.ts"
import { startInProcess } from "./support/control-plane.ts"
import { startPagerDuty, startSlack } from "./support/notify-servers.ts"
import { startPostgres, type TestPostgres } from "./support/postgres.ts"
import { healFailed, healSucceeded, simAgent } from "./support/sim-agent.ts"
import { waitFor } from "./support/wait.ts"

let pg: TestPostgres
beforeAll(async () => {
  pg = await startPostgres()
}, 60_000)
afterAll(async () => {
  await pg?.stop()
})

test("on PostgreSQL, one incident per problem, each step delivered once, resolved with the same dedup_key", async () => {
  await using slack = startSlack()
  await using pagerduty = startPagerDuty()
  const config = loadConfig({
    env: {
      CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl,
      CHIMERA_NOTIFICATIONS_PAGERDUTY_API_KEY: pagerduty.routingKey,
      CHIMERA_NOTIFICATIONS_PAGERDUTY_URL: pagerduty.enqueueUrl,
    },
  })
  await using cp = await startInProcess({
    databaseUrl: await pg.database("incidents"),
    notify: channelsFromConfig(config),
  })
  const node = await simAgent(cp, "pg-inc")
  await node.report(healFailed())
  await node.report(healFailed("switch-to-configuration switch exited 3"))
  const [incident] = await waitFor(
    "an open incident seen twice",
    async () => ((await (await cp.api("/api/incidents?status=open")).json()) as { incidents: Incident[] }).incidents,
    (is) => is.length === 1 && is[0]?.occurrences === 2,
  )
  await node.report(healSucceeded())
  const detail = await waitFor(
    "resolved and delivered",
    async () =>
      (await (await cp.api(`/api/incidents/${incident?.id}`)).json()) as { incident: Incident; deliveries: Delivery[] },
    (d) =>
      d.incident.status === "resolved" &&
      d.deliveries.length === 4 &&
      d.deliveries.every((x) => x.status === "delivered"),
    30_000,
  )
  expect(detail.deliveries.map((d) => `${d.channel}:${d.step}`).sort()).toEqual([
    "pagerduty:opened",
    "pagerduty:resolved",
    "slack:opened",
    "slack:resolved",
  ])
  expect(slack.messages()).toHaveLength(2)
  const pd = pagerduty.events()
  expect(pd.map((e) => e.event_action)).toEqual(["trigger", "resolve"])
  expect(pd[1]?.dedup_key).toBe(pd[0]?.dedup_key ?? "")
  expect(await (await cp.api("/api/incidents?status=resolved&node=pg-inc")).json()).toMatchObject({
    incidents: [{ id: incident?.id, status: "resolved" }],
  })
})
