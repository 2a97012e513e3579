// Times as people read them in what every channel receives: one notice (an unreachable node's, whose
// message names when it was last heard) through Slack, PagerDuty, email, ServiceNow and Jira against
// their local stand-ins. Readers sit in many time zones, so each text says the time in UTC, to the
// second, as "2026-12-07 10:11:12 UTC", and none carries ISO 8601's "2026-12-07T10:11:12.345Z". What a
// machine reads keeps ISO: PagerDuty's payload.timestamp, and the Message-IDs derived from it.
import { expect, test } from "bun:test"
import { createEmailChannel } from "../control/adapters/notify/email.ts"
import { createJira } from "../control/adapters/notify/jira.ts"
import { createPagerDutyChannel } from "../control/adapters/notify/pagerduty.ts"
import { createServiceNow } from "../control/adapters/notify/servicenow.ts"
import { createSlackChannel } from "../control/adapters/notify/slack.ts"
import { rulesFor, watchMessage } from "../control/domain/incident-rules.ts"
import { startJira } from "./support/jira-server.ts"
import { notice } from "./support/notice.ts"
import { startPagerDuty, startSlack } from "./support/notify-servers.ts"
import { startServiceNow } from "./support/servicenow-server.ts"
import { mailBody, startSmtp } from "./support/smtp-server.ts"

const HTTP = { timeoutMs: 10_000 }
const AT = "2026-12-07T10:11:12.345Z"
const LAST_HEARD = "2026-12-07T10:09:58.901Z"
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d/

/** The message the control plane writes for a node silent since LAST_HEARD, as the incident rules do. */
function unreachableMessage(): string {
  const [action] = rulesFor(
    { id: 1, type: "node.unreachable", nodeId: "web-1", at: AT, data: { lastHeartbeat: LAST_HEARD } },
    AT,
  )
  if (action?.kind !== "watch") throw new Error(`expected a watch, got ${JSON.stringify(action)}`)
  return watchMessage("unreachable", action.message, action.sinceMs, Date.parse(AT))
}

test("an incident's message and every channel's text say times in UTC, readable; machine fields keep ISO", async () => {
  const message = unreachableMessage()
  expect(message).toBe("no heartbeat since 2026-12-07 10:09:58 UTC (73 s)")
  const told = notice({ problem: "unreachable", title: "web-1 is unreachable", message, at: AT })

  await using slack = startSlack()
  await using pd = startPagerDuty()
  await using smtp = await startSmtp()
  await using sn = startServiceNow()
  await using jira = startJira()
  const email = { host: smtp.host, port: smtp.port, from: "chimera@example.org", to: ["ops@example.org"] }
  const sent = await Promise.all([
    createSlackChannel({ webhookUrl: slack.webhookUrl }, HTTP).send(told),
    createPagerDutyChannel({ routingKey: pd.routingKey, url: pd.enqueueUrl }, HTTP).send(told),
    createEmailChannel({ ...email, username: "", password: "", starttls: true, ca: "" }, HTTP).send(told),
    createServiceNow({ url: sn.url, username: sn.user, password: sn.password, closeCode: "Solved" }, HTTP).create(told),
    createJira(
      {
        url: jira.url,
        username: jira.email,
        apiToken: jira.token,
        projectKey: jira.project,
        issueType: "Task",
        doneTransition: "",
      },
      HTTP,
    ).create(told),
  ])
  expect(sent.map((r) => r.ok)).toEqual([true, true, true, true, true])

  const [mail] = await smtp.messages()
  const [event] = pd.events()
  const texts: Record<string, string> = {
    slack: JSON.stringify(slack.messages()[0]),
    pagerduty: JSON.stringify(event?.payload?.custom_details),
    email: mail ? mailBody(mail) : "",
    servicenow: sn.incidents.values().next().value?.description ?? "",
    jira: JSON.stringify(jira.issues.get("OPS-1")?.description),
  }
  for (const [channel, text] of Object.entries(texts)) {
    expect({ channel, at: text.includes("2026-12-07 10:11:12 UTC") }).toEqual({ channel, at: true })
    expect({ channel, since: text.includes("no heartbeat since 2026-12-07 10:09:58 UTC") }).toEqual({
      channel,
      since: true,
    })
    expect({ channel, iso: text.match(ISO)?.[0] ?? null }).toEqual({ channel, iso: null })
  }
  expect(texts.email).toContain("At: 2026-12-07 10:11:12 UTC")
  expect((event?.payload as { timestamp?: string } | undefined)?.timestamp).toBe(AT)
})
