// The [notifications] and [itsm] sections: where alerts go (Slack, PagerDuty, email) and which ticket
// system holds one ticket per incident (ServiceNow, Jira). Every field has a default that turns its
// channel off, so an empty section is valid; once a channel is asked for, what it cannot work without is
// required here, at start, naming the field (a Jira provider without project_key, an email channel with
// no recipients), rather than failing at 3 a.m. on the first incident. Each secret can come from the
// file itself or from a `_file` beside it (read when the channels are built, see
// control/adapters/notify/secrets.ts); setting both is refused, since one would silently win.
import { z } from "zod"
import { isLoopbackHost } from "../protocol/loopback.ts"

const _string = () => z.string({ error: "expected a string" })
const _bool = () => z.boolean({ error: "expected true or false" })
const _int = (expected: string, min: number, max: number) => {
  const error = { error: expected }
  return z.number(error).int(error).min(min, error).max(max, error)
}
// The outbox worker gives up on a delivery after 30 s and tries again later; a channel still waiting
// past that could deliver twice, so its own deadline comes first.
const _timeout = () =>
  _int("expected a whole number of seconds from 1 to 25 (the outbox gives each delivery 30 s)", 1, 25).default(10)

/**
 * An absolute https URL, or http to a loopback address (a local proxy or test server): every one of
 * these endpoints carries a credential (a webhook's path, a routing key, Basic auth), which must not
 * cross a network in clear.
 */
export function isEndpointUrl(value: string): boolean {
  if (!URL.canParse(value)) return false
  const url = new URL(value)
  if (url.protocol === "https:") return url.hostname !== ""
  return url.protocol === "http:" && isLoopbackHost(url.hostname)
}
const _url = (fallback: string) =>
  _string()
    .refine((v) => v === "" || isEndpointUrl(v), {
      error: 'expected an https URL (http only to a loopback address) or ""',
    })
    .default(fallback)

const ADDRESS = /^[^\s@<>,;"()[\]]+@[^\s@<>,;"()[\]]+$/
/** An address, bare or with a display name ("Chimera <chimera@example.org>"); no line breaks, ever. */
export function isMailbox(value: string): boolean {
  const named = /^([^<>\r\n"]*)<([^<>]+)>$/.exec(value)
  return named ? ADDRESS.test(named[2] ?? "") : ADDRESS.test(value)
}
/** The addresses of a comma-separated list, with blanks dropped. */
export const addressList = (value: string): string[] =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")

type Issue = { path: string[]; message: string }
type Check = (issues: Issue[]) => void

const _section = <T extends z.core.$ZodLooseShape>(shape: T, check: (v: z.output<z.ZodObject<T>>) => Check) =>
  z
    .object(shape, { error: "expected a table (a [section] of settings)" })
    .strict()
    .superRefine((value, ctx) => {
      const issues: Issue[] = []
      check(value as z.output<z.ZodObject<T>>)(issues)
      for (const issue of issues) ctx.addIssue({ code: "custom", path: issue.path, message: issue.message })
    })
    .prefault({} as never)

function _oneOf(issues: Issue[], value: string, file: string, field: string) {
  if (value !== "" && file !== "")
    issues.push({ path: [field], message: `set either ${field} or ${field}_file, not both` })
}

export const NotificationsSection = _section(
  {
    slack_webhook_url: _url(""),
    slack_webhook_url_file: _string().default(""),
    /** The Events API v2 integration key (routing_key) of a PagerDuty service. */
    pagerduty_api_key: _string().default(""),
    pagerduty_api_key_file: _string().default(""),
    pagerduty_url: _url("https://events.pagerduty.com/v2/enqueue"),
    email_smtp_host: _string().default(""),
    email_smtp_port: _int("expected an integer from 1 to 65535", 1, 65535).default(587),
    email_from: _string().default(""),
    email_to: _string().default(""),
    email_username: _string().default(""),
    email_password: _string().default(""),
    email_password_file: _string().default(""),
    /** Upgrade with STARTTLS when the server offers it (required when a password is sent); false: never. */
    email_starttls: _bool().default(true),
    /** PEM certificates to trust for the SMTP server besides the system's (a private CA). */
    email_ca_file: _string().default(""),
    timeout_seconds: _timeout(),
  },
  (n) => (issues) => {
    _oneOf(issues, n.slack_webhook_url, n.slack_webhook_url_file, "slack_webhook_url")
    _oneOf(issues, n.pagerduty_api_key, n.pagerduty_api_key_file, "pagerduty_api_key")
    _oneOf(issues, n.email_password, n.email_password_file, "email_password")
    if (n.pagerduty_url === "") issues.push({ path: ["pagerduty_url"], message: "expected an https URL" })
    const emailAsked = [n.email_smtp_host, n.email_from, n.email_to].some((v) => v !== "")
    if (!emailAsked) return
    if (n.email_smtp_host === "")
      issues.push({ path: ["email_smtp_host"], message: "required when email_from or email_to is set" })
    if (!isMailbox(n.email_from))
      issues.push({ path: ["email_from"], message: "expected the sender's address (ops@example.org)" })
    const to = addressList(n.email_to)
    if (to.length === 0 || !to.every(isMailbox))
      issues.push({ path: ["email_to"], message: "expected one or more addresses, separated by commas" })
    const hasPassword = n.email_password !== "" || n.email_password_file !== ""
    if (hasPassword !== (n.email_username !== ""))
      issues.push({
        path: [hasPassword ? "email_username" : "email_password"],
        message: "email_username and email_password (or email_password_file) go together",
      })
    if (hasPassword && !n.email_starttls && n.email_smtp_port !== 465)
      issues.push({
        path: ["email_starttls"],
        message: "a password is never sent in clear: keep STARTTLS on, or use port 465 (TLS from the start)",
      })
  },
)

export const ItsmSection = _section(
  {
    provider: z.enum(["", "servicenow", "jira"], { error: 'expected "servicenow", "jira" or "" (none)' }).default(""),
    url: _url(""),
    /** ServiceNow: the API user; Jira Cloud: the account's email address. */
    username: _string().default(""),
    /** ServiceNow: the user's password; Jira: an API token. */
    api_key: _string().default(""),
    api_key_file: _string().default(""),
    /** Jira: the project new issues are made in. */
    project_key: _string().default(""),
    /** Jira: the issue type new issues get. */
    issue_type: _string().default("Task"),
    /** Jira: the transition that closes an issue; "" picks the first one into the Done category. */
    done_transition: _string().default(""),
    /** ServiceNow: the close code of a resolved incident. */
    close_code: _string().default("Solved (Permanently)"),
    timeout_seconds: _timeout(),
  },
  (s) => (issues) => {
    _oneOf(issues, s.api_key, s.api_key_file, "api_key")
    if (s.provider === "") return
    const need = (field: "url" | "username" | "project_key", why: string) => {
      if (s[field] === "") issues.push({ path: [field], message: `required when provider is "${s.provider}" (${why})` })
    }
    need("url", "the instance's address, https://example.service-now.com or https://example.atlassian.net")
    need("username", s.provider === "jira" ? "the account's email address" : "the API user")
    if (s.api_key === "" && s.api_key_file === "")
      issues.push({ path: ["api_key"], message: `required when provider is "${s.provider}" (or api_key_file)` })
    if (s.provider === "jira") need("project_key", "the project issues are made in")
    if (s.provider === "jira" && s.issue_type === "")
      issues.push({ path: ["issue_type"], message: "expected the issue type new issues get (Task)" })
    if (s.provider === "servicenow" && s.close_code === "")
      issues.push({ path: ["close_code"], message: "expected the close code of a resolved incident" })
  },
)
