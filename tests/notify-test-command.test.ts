// `chimera notify test` end to end: a real `chimera web` configured through CHIMERA_* variables (secrets
// from _file settings) with Slack, PagerDuty, email (real SMTP: aiosmtpd with STARTTLS and a login)
// and Jira or ServiceNow, each a local server checking the real wire format; the CLI prints one line
// per channel. With every URL or credential wrong, each line names its channel and what the service
// answered, the exit status is 1, and neither a stack trace nor a secret is printed.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { USAGE_STATUS } from "../control/cli/errors.ts"
import { freePort, type SpawnedControlPlane, spawnControlPlane } from "./support/control-plane.ts"
import { type JiraFake, startJira } from "./support/jira-server.ts"
import { type PagerDutyFake, type SlackFake, startPagerDuty, startSlack } from "./support/notify-servers.ts"
import { type ServiceNowFake, startServiceNow } from "./support/servicenow-server.ts"
import { mailBody, type SmtpServer, startSmtp } from "./support/smtp-server.ts"
import { run } from "./support/tools.ts"

setDefaultTimeout(120_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const SMTP_PASSWORD = "smtp-Pa55word-for-notify-test"

let dir: string
let slack: SlackFake
let pd: PagerDutyFake
let smtp: SmtpServer
let jira: JiraFake
let sn: ServiceNowFake

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "chimera-notify-test-"))
  slack = startSlack()
  pd = startPagerDuty()
  jira = startJira()
  sn = startServiceNow()
  smtp = await startSmtp({ tls: true, auth: { user: "chimera", password: SMTP_PASSWORD } })
})
afterAll(async () => {
  await Promise.all([slack.stop(), pd.stop(), jira.stop(), sn.stop(), smtp.stop()])
  await rm(dir, { recursive: true, force: true })
})

async function secretFile(name: string, value: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, `${value}\n`, { mode: 0o600 })
  return path
}

/** Every channel configured, with `wrong` values where a test wants them refused. */
async function env(wrong = false): Promise<Record<string, string>> {
  const tag = wrong ? "wrong" : "right"
  return {
    CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL_FILE: await secretFile(
      `slack-${tag}`,
      wrong ? `${slack.url}/services/T0/B0/not-the-webhook-secret` : slack.webhookUrl,
    ),
    CHIMERA_NOTIFICATIONS_PAGERDUTY_API_KEY: wrong ? "WR0NGKEYWR0NGKEYWR0NGKEYWR0NGKEY" : pd.routingKey,
    CHIMERA_NOTIFICATIONS_PAGERDUTY_URL: pd.enqueueUrl,
    CHIMERA_NOTIFICATIONS_EMAIL_SMTP_HOST: smtp.host,
    CHIMERA_NOTIFICATIONS_EMAIL_SMTP_PORT: String(smtp.port),
    CHIMERA_NOTIFICATIONS_EMAIL_FROM: "chimera@example.org",
    CHIMERA_NOTIFICATIONS_EMAIL_TO: "ops@example.org",
    CHIMERA_NOTIFICATIONS_EMAIL_USERNAME: "chimera",
    CHIMERA_NOTIFICATIONS_EMAIL_PASSWORD_FILE: await secretFile(`smtp-${tag}`, wrong ? "wrong-smtp-pw" : SMTP_PASSWORD),
    CHIMERA_NOTIFICATIONS_EMAIL_CA_FILE: smtp.caFile,
    CHIMERA_ITSM_PROVIDER: "jira",
    CHIMERA_ITSM_URL: jira.url,
    CHIMERA_ITSM_USERNAME: jira.email,
    CHIMERA_ITSM_API_KEY_FILE: await secretFile(`jira-${tag}`, wrong ? "ATATT-wrong-jira-token" : jira.token),
    CHIMERA_ITSM_PROJECT_KEY: jira.project,
  }
}

const cli = (cp: SpawnedControlPlane, ...args: string[]) =>
  run([process.execPath, MAIN, "notify", "test", ...args], {
    env: { CHIMERA_URL: cp.url, CHIMERA_TOKEN: cp.adminToken, NO_COLOR: "1", CHIMERA_CONFIG_FILE: "" },
  })

describe("chimera notify test", () => {
  test("each configured channel answers ok, and each service received a real test notice", async () => {
    await using cp = await spawnControlPlane(freePort(), { env: await env() })
    const out = await cli(cp)
    expect(out.stderr).toBe("")
    expect(out.code).toBe(0)
    expect(out.stdout.trimEnd().split("\n")).toEqual([
      "slack        ok  sent",
      "pagerduty    ok  triggered and resolved a test alert",
      "email        ok  sent",
      "itsm (jira)  ok  credential, project and issue type checked (nothing written)",
    ])
    expect(JSON.stringify(slack.messages().at(-1))).toContain("Chimera test notification")
    const [trigger, resolve] = pd.events().slice(-2)
    expect(trigger?.event_action).toBe("trigger")
    expect(resolve).toMatchObject({ event_action: "resolve", dedup_key: trigger?.dedup_key })
    expect(pd.alerts.get(trigger?.dedup_key ?? "")).toBe("resolved")
    const mail = (await smtp.messages()).at(-1)
    expect(mail).toMatchObject({ tls: true, auth_user: "chimera", rcpt_tos: ["ops@example.org"] })
    expect(mail ? mailBody(mail) : "").toContain("Chimera's email channel works")
    expect(jira.received.at(-1)).toMatchObject({ method: "GET", path: `/rest/api/3/project/${jira.project}` })
    expect(jira.issues.size).toBe(0)

    const only = await cli(cp, "--channel", "slack", "--json")
    expect(only.code).toBe(0)
    expect(JSON.parse(only.stdout)).toEqual({
      results: [{ channel: "slack", service: "slack", ok: true, detail: "sent" }],
    })
  })

  test("wrong URLs and credentials: one clear line per channel, exit 1, no stack trace, no secret", async () => {
    await using cp = await spawnControlPlane(freePort(), { env: await env(true) })
    const out = await cli(cp)
    expect(out.code).toBe(1)
    const lines = out.stdout.trimEnd().split("\n")
    expect(lines).toHaveLength(4)
    expect(lines[0]).toStartWith("slack        failed  slack: 127.0.0.1:")
    expect(lines[0]).toContain("answered 404 no_service: the webhook URL is wrong or was revoked")
    expect(lines[1]).toContain("pagerduty    failed  pagerduty:")
    expect(lines[1]).toContain("Invalid routing key: check notifications.pagerduty_api_key")
    expect(lines[2]).toStartWith(`email        failed  email: 127.0.0.1:${smtp.port} refused the login: 535`)
    expect(lines[3]).toStartWith("itsm (jira)  failed  jira: 127.0.0.1:")
    expect(lines[3]).toContain("answered 401")
    const all = out.stdout + out.stderr
    for (const secret of ["not-the-webhook-secret", "WR0NGKEY", "wrong-smtp-pw", "ATATT-wrong-jira-token"])
      expect(all).not.toContain(secret)
    expect(all).not.toMatch(/^\s+at /m)
  })

  test("a channel that is not configured is named with what to set; ServiceNow is checked by a read", async () => {
    await using cp = await spawnControlPlane(freePort(), {
      env: {
        CHIMERA_ITSM_PROVIDER: "servicenow",
        CHIMERA_ITSM_URL: sn.url,
        CHIMERA_ITSM_USERNAME: sn.user,
        CHIMERA_ITSM_API_KEY: sn.password,
      },
    })
    const missing = await cli(cp, "--channel", "email")
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain(
      "the email channel is not configured: set notifications.email_smtp_host, email_from and email_to (422 VALIDATION_FAILED)",
    )
    const bad = await cli(cp, "--channel", "sms")
    expect(bad.code).toBe(USAGE_STATUS)
    expect(bad.stderr).toContain('--channel: expected "slack", "pagerduty", "email" or "itsm"')
    const itsm = await cli(cp)
    expect(itsm.code).toBe(0)
    expect(itsm.stdout).toBe("itsm (servicenow)  ok  credential and access to incidents checked (nothing written)\n")
    expect(sn.incidents.size).toBe(0)
  })

  test("only an admin may send test notices", async () => {
    await using cp = await spawnControlPlane(freePort())
    const made = await fetch(`${cp.url}/api/tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "ops-viewer", role: "operator" }),
    })
    const { token } = (await made.json()) as { token: string }
    const refused = await run([process.execPath, MAIN, "notify", "test"], {
      env: { CHIMERA_URL: cp.url, CHIMERA_TOKEN: token, NO_COLOR: "1", CHIMERA_CONFIG_FILE: "" },
    })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("403")
    const none = await cli(cp)
    expect(none.code).toBe(1)
    expect(none.stderr).toContain("No channel is configured")
    const noneJson = await cli(cp, "--json")
    expect(noneJson.code).toBe(1)
    expect(JSON.parse(noneJson.stdout)).toEqual({ results: [] })
    expect(noneJson.stderr).toContain("No channel is configured")
  })
})
