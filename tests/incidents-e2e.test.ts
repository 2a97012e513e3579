// Incidents end to end with real parts: a real agent in a test node (its own /run and system
// profile, real Nix closures), a real control plane, and local services that check the real wire
// formats (Slack's webhook, PagerDuty's Events API v2, Jira's REST v3) plus a real SMTP server
// (aiosmtpd, STARTTLS). A desired closure whose activation fails pages once, posts once, mails once
// and opens one Jira issue, however often the agent retries; fixing the desired closure heals the
// node and resolves all of it. An agent that stops is an unreachable incident after the threshold,
// resolved when it comes back.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { channelsFromConfig } from "../control/adapters/notify/index.ts"
import { loadConfig } from "../control/config.ts"
import type { Incident } from "../control/domain/incident-model.ts"
import type { StorePath } from "../protocol/ids.ts"
import { type AgentProcess, startAgent } from "./support/agent-process.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type JiraFake, startJira } from "./support/jira-server.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { type PagerDutyFake, type SlackFake, startPagerDuty, startSlack } from "./support/notify-servers.ts"
import { type SmtpServer, startSmtp } from "./support/smtp-server.ts"
import { createTestNode, type TestNode } from "./support/test-node.ts"
import { waitFor } from "./support/wait.ts"

let good: StorePath
let broken: StorePath

beforeAll(async () => {
  ;[good, broken] = await Promise.all([buildTestSystem(1), buildTestSystem("13", { failSwitch: true })])
}, 180_000)

interface Services extends AsyncDisposable {
  slack: SlackFake
  pagerduty: PagerDutyFake
  jira: JiraFake
  smtp: SmtpServer
  env: Record<string, string>
}

async function services(): Promise<Services> {
  const slack = startSlack()
  const pagerduty = startPagerDuty()
  const jira = startJira()
  const smtp = await startSmtp({ tls: true })
  const env = {
    CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: slack.webhookUrl,
    CHIMERA_NOTIFICATIONS_PAGERDUTY_API_KEY: pagerduty.routingKey,
    CHIMERA_NOTIFICATIONS_PAGERDUTY_URL: pagerduty.enqueueUrl,
    CHIMERA_NOTIFICATIONS_EMAIL_SMTP_HOST: smtp.host,
    CHIMERA_NOTIFICATIONS_EMAIL_SMTP_PORT: String(smtp.port),
    CHIMERA_NOTIFICATIONS_EMAIL_FROM: "chimera@example.org",
    CHIMERA_NOTIFICATIONS_EMAIL_TO: "oncall@example.org",
    CHIMERA_NOTIFICATIONS_EMAIL_CA_FILE: smtp.caFile,
    CHIMERA_ITSM_PROVIDER: "jira",
    CHIMERA_ITSM_URL: jira.url,
    CHIMERA_ITSM_USERNAME: jira.email,
    CHIMERA_ITSM_API_KEY: jira.token,
    CHIMERA_ITSM_PROJECT_KEY: jira.project,
  }
  return {
    slack,
    pagerduty,
    jira,
    smtp,
    env,
    async [Symbol.asyncDispose]() {
      await Promise.all([slack.stop(), pagerduty.stop(), jira.stop(), smtp.stop()])
    },
  }
}

const incidents = async (cp: TestControlPlane, query = "") =>
  ((await (await cp.api(`/api/incidents${query}`)).json()) as { incidents: Incident[] }).incidents

async function enrolOn(cp: TestControlPlane, node: TestNode, id: string): Promise<AgentProcess> {
  const jt = await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId: id }) })
  const { token } = (await jt.json()) as { token: string }
  const agent = startAgent(node, { nodeId: id, controlUrl: cp.url, joinToken: token })
  try {
    await waitFor(
      `${id} to enrol`,
      async () => (await cp.api(`/api/nodes/${id}`)).status,
      (s) => s === 200,
    )
    const put = await cp.api(`/api/nodes/${id}/desired`, { method: "PUT", body: JSON.stringify({ closure: good }) })
    expect(put.status).toBe(200)
    await waitFor(
      `${id} healthy`,
      async () => ((await (await cp.api(`/api/nodes/${id}`)).json()) as { status: string }).status,
      (s) => s === "healthy",
    )
  } catch (error) {
    await agent.stop()
    throw new Error(`${(error as Error).message}\nagent log:\n${agent.log()}`)
  }
  return agent
}

const setDesired = (cp: TestControlPlane, id: string, closure: string) =>
  cp.api(`/api/nodes/${id}/desired`, { method: "PUT", body: JSON.stringify({ closure }) })

describe("incidents end to end", () => {
  let s: Services
  beforeAll(async () => {
    s = await services()
  })
  afterAll(async () => {
    await s[Symbol.asyncDispose]()
  })

  test("a failed activation pages, posts, mails and opens one Jira issue; fixing the closure resolves them all", async () => {
    const config = loadConfig({ env: s.env })
    await using cp = await startInProcess({ notify: channelsFromConfig(config) })
    await using node = await createTestNode({ name: "inc-heal", boot: good })
    await using agent = await enrolOn(cp, node, "inc-heal")
    const fail = async (error: Error): Promise<never> => {
      throw new Error(`${error.message}\nagent log:\n${agent.log()}`)
    }

    expect((await setDesired(cp, "inc-heal", broken)).status).toBe(200)
    const [incident] = await waitFor(
      "a heal-failed incident with its Jira ticket",
      () => incidents(cp, "?status=open"),
      (is) => is.length === 1 && is[0]?.ticketId !== null,
      60_000,
    ).catch(fail)
    expect(incident?.problem).toBe("heal-failed")
    expect(incident?.severity).toBe("critical")
    await waitFor(
      "the page, the Slack message and the email",
      async () => ({
        pd: s.pagerduty.events().length,
        slack: s.slack.messages().length,
        mail: (await s.smtp.messages()).length,
      }),
      (n) => n.pd >= 1 && n.slack >= 1 && n.mail >= 1,
      30_000,
    ).catch(fail)
    // The agent retries its heal meanwhile: one incident, counted, not one per failure.
    await waitFor(
      "a second failed attempt",
      () => incidents(cp, "?status=open"),
      (is) => (is[0]?.occurrences ?? 0) >= 2,
      60_000,
    ).catch(fail)
    expect(await incidents(cp)).toHaveLength(1)
    const [issue] = [...s.jira.issues.values()]
    expect(s.jira.issues.size).toBe(1)
    expect(incident?.ticketId === issue?.key || incident?.ticketId === issue?.id).toBe(true)

    expect((await setDesired(cp, "inc-heal", good)).status).toBe(200)
    await waitFor(
      "the incident resolved and every delivery acknowledged",
      async () =>
        (await (await cp.api(`/api/incidents/${incident?.id}`)).json()) as {
          incident: Incident
          deliveries: { status: string; step: string; channel: string }[]
        },
      (d) => d.incident.status === "resolved" && d.deliveries.every((x) => x.status === "delivered"),
      60_000,
    ).catch(fail)

    const pd = s.pagerduty.events()
    expect(pd.map((e) => e.event_action)).toEqual(["trigger", "resolve"])
    expect(pd[1]?.dedup_key).toBe(pd[0]?.dedup_key ?? "")
    expect(s.pagerduty.alerts.get(pd[0]?.dedup_key ?? "")).toBe("resolved")
    const slack = s.slack.messages()
    expect(slack).toHaveLength(2)
    expect(JSON.stringify(slack[1])).toContain("Resolved")
    const mails = await s.smtp.messages()
    expect(mails).toHaveLength(2)
    expect(mails.every((m) => m.tls && m.rcpt_tos.includes("oncall@example.org"))).toBe(true)
    expect(s.jira.issues.size).toBe(1)
    expect([...s.jira.issues.values()][0]?.status).toBe("Done")
  }, 240_000)

  test("an agent that stops is an unreachable incident after the threshold, resolved when it is back", async () => {
    const pagesBefore = s.pagerduty.events().length
    const config = loadConfig({ env: s.env })
    await using cp = await startInProcess({
      notify: channelsFromConfig(config),
      incidents: { unreachableAfterMs: 1000 },
    })
    await using node = await createTestNode({ name: "inc-gone", boot: good })
    const agent = await enrolOn(cp, node, "inc-gone")
    expect(await agent.stop()).toBe(0)

    const [incident] = await waitFor(
      "an unreachable incident",
      () => incidents(cp, "?status=open"),
      (is) => is.length === 1,
      60_000,
    )
    expect(incident?.problem).toBe("unreachable")
    expect(incident?.nodeId).toBe("inc-gone")

    await using back = startAgent(node, { nodeId: "inc-gone", controlUrl: cp.url })
    await waitFor(
      "the incident resolved and its resolution delivered",
      async () =>
        (await (await cp.api(`/api/incidents/${incident?.id}`)).json()) as {
          incident: Incident
          deliveries: { status: string; step: string }[]
        },
      (d) =>
        d.incident.status === "resolved" &&
        d.deliveries.some((x) => x.step === "resolved") &&
        d.deliveries.every((x) => x.status === "delivered"),
      60_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nagent log:\n${back.log()}`)
    })
    const pd = s.pagerduty.events().slice(pagesBefore)
    expect(pd.map((e) => e.event_action)).toEqual(["trigger", "resolve"])
    expect(pd[1]?.dedup_key).toBe(pd[0]?.dedup_key ?? "")
  }, 180_000)
})
