// Nothing lost, nothing doubled: incidents' notifications go through the outbox to a local Slack that
// checks the webhook's wire format. An outage (500s, then 429s with Retry-After) with the control
// plane SIGKILLed in the middle still ends with every incident step in Slack exactly once; a refused
// webhook is kept as a failed delivery with its error (and no secret), shown by the API and the CLI.
import { describe, expect, test } from "bun:test"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { loadConfig } from "../control/config.ts"
import type { Delivery, Incident } from "../control/domain/incident-model.ts"
import { freePort, spawnControlPlane, startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { startSlack } from "./support/notify-servers.ts"
import { startServiceNow } from "./support/servicenow-server.ts"
import { healFailed, healSucceeded, simAgent } from "./support/sim-agent.ts"
import { runOk } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

interface Detail {
  incident: Incident
  deliveries: Delivery[]
}

const incidents = async (cp: TestControlPlane, query = "") =>
  ((await (await cp.api(`/api/incidents${query}`)).json()) as { incidents: Incident[] }).incidents
const detail = async (cp: TestControlPlane, id: string) =>
  (await (await cp.api(`/api/incidents/${id}`)).json()) as Detail

/** Which incident and step a Slack message is about, from the facts it states. */
function stepOf(message: unknown): string {
  const text = JSON.stringify(message)
  const id = /\*Incident\*\\n([0-9a-f-]{36})/.exec(text)?.[1] ?? "?"
  const header = (message as { blocks?: { type: string; text?: { text?: string } }[] }).blocks?.[0]?.text?.text ?? ""
  return `${id}:${header.startsWith("Resolved") ? "resolved" : "opened"}`
}

describe("the incident outbox", () => {
  test("Slack down (500, then 429 with Retry-After) and the control plane SIGKILLed mid-outage: every step arrives once", async () => {
    await using slack = startSlack()
    await using cp = await spawnControlPlane(freePort(), {
      env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl },
    })
    slack.failNext(3, { status: 500, body: "rollup_error" })
    slack.failNext(3, { status: 429, headers: { "retry-after": "4" }, body: "rate_limited" })
    const nodes = await Promise.all(["out-1", "out-2", "out-3"].map((id) => simAgent(cp, id)))
    for (const node of nodes) await node.report(healFailed())

    await waitFor(
      "Slack to refuse four tries",
      async () => slack.received.length,
      (n) => n >= 4,
      30_000,
    )
    await cp.kill()
    expect(slack.messages()).toHaveLength(0)
    await cp.restart()

    const opened = await waitFor(
      "three open incidents",
      () => incidents(cp, "?status=open"),
      (is) => is.length === 3,
    )
    await waitFor(
      "every opening in Slack",
      async () => slack.messages().length,
      (n) => n >= 3,
      60_000,
    )
    for (const node of nodes) await node.report(healSucceeded())
    const ids = opened.map((i) => i.id)
    await waitFor(
      "every delivery acknowledged",
      () => Promise.all(ids.map((id) => detail(cp, id))),
      (ds) => ds.every((d) => d.incident.status === "resolved" && d.deliveries.every((x) => x.status === "delivered")),
      60_000,
    )
    const steps = slack.messages().map(stepOf).sort()
    expect(steps).toEqual(ids.flatMap((id) => [`${id}:opened`, `${id}:resolved`]).sort())
    // The outage was seen and outlived: the openings took several attempts, across the restart.
    const [first] = await Promise.all(ids.map((id) => detail(cp, id)))
    expect(first?.deliveries.find((d) => d.step === "opened")?.attempts).toBeGreaterThan(1)
    // Delivered: the table says "ok" (an incident no channel heard of shows "-" instead, in the README).
    const env = { ...process.env, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1" }
    const table = await runOk([process.execPath, `${import.meta.dir}/../control/main.ts`, "incidents"], { env })
    const deliveries = table
      .trim()
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/).at(-1))
    expect(deliveries).toEqual(["ok", "ok", "ok"])
  }, 120_000)

  test("a 429's Retry-After puts the next attempt at least that far out, and the error is kept meanwhile", async () => {
    await using slack = startSlack()
    const config = loadConfig({ env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl } })
    await using cp = await startInProcess({ notify: channelsFromConfig(config) })
    slack.failNext(1, { status: 429, headers: { "retry-after": "300" }, body: "rate_limited" })
    const node = await simAgent(cp, "throttled")
    const before = Date.now()
    await node.report(healFailed())
    const [incident] = await waitFor(
      "an incident",
      () => incidents(cp),
      (is) => is.length === 1,
    )
    const d = await waitFor(
      "the throttled attempt recorded",
      () => detail(cp, incident?.id ?? ""),
      (x) => x.deliveries[0]?.attempts === 1,
    )
    const slackDelivery = d.deliveries[0]
    expect(slackDelivery?.status).toBe("pending")
    expect(slackDelivery?.lastError).toContain("429")
    expect(Date.parse(slackDelivery?.nextAttemptAt ?? "")).toBeGreaterThanOrEqual(before + 299_000)
  })

  test("a webhook Slack refuses is a failed delivery, kept with its error, shown, never retried, no secret in it", async () => {
    await using slack = startSlack("/services/T0CHIMERA/B0CHIMERA/right-secret-path")
    const wrong = `${slack.url}/services/T0CHIMERA/B0CHIMERA/wrong-secret-path`
    const config = loadConfig({ env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: wrong } })
    await using cp = await startInProcess({ notify: channelsFromConfig(config) })
    const node = await simAgent(cp, "refused")
    await node.report(healFailed())
    const [incident] = await waitFor(
      "an incident",
      () => incidents(cp),
      (is) => is.length === 1,
    )
    const d = await waitFor(
      "the delivery to fail for good",
      () => detail(cp, incident?.id ?? ""),
      (x) => x.deliveries[0]?.status === "failed",
    )
    expect(d.deliveries[0]?.lastError).toContain("slack")
    expect(JSON.stringify(d)).not.toContain("wrong-secret-path")
    expect(slack.received).toHaveLength(1)
    const listed = (await (await cp.api("/api/incidents")).json()) as { incidents: { failed: number }[] }
    expect(listed.incidents[0]?.failed).toBe(1)

    const env = { ...process.env, CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1" }
    const main = `${import.meta.dir}/../control/main.ts`
    const table = await runOk([process.execPath, main, "incidents"], { env })
    expect(table).toContain("1 failed")
    const shown = await runOk([process.execPath, main, "incidents", "show", incident?.id ?? ""], { env })
    expect(shown).toContain("failed")
    expect(shown).toContain("slack")
    expect(shown).not.toContain("wrong-secret-path")
  })

  test("ServiceNow: the incident is created first, then its notes and its resolution, on the same record", async () => {
    await using sn = startServiceNow()
    // ServiceNow answers the first create with an outage, so the notes queued behind it must wait.
    sn.failNext(1, { status: 503, headers: { "retry-after": "1" } })
    const config = loadConfig({
      env: {
        CHIMERA_ITSM_PROVIDER: "servicenow",
        CHIMERA_ITSM_URL: sn.url,
        CHIMERA_ITSM_USERNAME: sn.user,
        CHIMERA_ITSM_API_KEY: sn.password,
      },
    })
    await using cp = await startInProcess({ notify: channelsFromConfig(config), incidents: { updateEveryMs: 0 } })
    const node = await simAgent(cp, "sn-node")
    await node.report(healFailed())
    await node.report(healFailed("switch-to-configuration switch exited 2"))
    await node.report(healFailed("switch-to-configuration switch exited 3"))
    await node.report(healSucceeded())
    const [incident] = await waitFor(
      "an incident",
      () => incidents(cp),
      (is) => is.length === 1,
    )
    const d = await waitFor(
      "every ticket step delivered",
      () => detail(cp, incident?.id ?? ""),
      (x) => x.deliveries.length === 4 && x.deliveries.every((y) => y.status === "delivered"),
      30_000,
    )
    expect(d.deliveries.map((x) => x.step)).toEqual(["opened", "updated-1", "updated-2", "resolved"])
    expect(sn.incidents.size).toBe(1)
    const [record] = [...sn.incidents.values()]
    expect(d.incident.ticketLabel).toBe(record?.number ?? "")
    expect(record?.state).toBe("6")
    expect(record?.work_notes.length).toBeGreaterThanOrEqual(2)
    expect(record?.work_notes.join("\n")).toContain("exited 3")
  })
})
