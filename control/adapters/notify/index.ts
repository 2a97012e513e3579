// Builds the channels and the ticket system the configuration asks for: a channel is on when the
// settings it needs are present (the schema has already refused half-set ones), and its secrets are
// read here, once, at start, so an unreadable key file stops the start with the field named. Each
// adapter gets the section's timeout and, for tests and proxies, whatever `fetch` and clock are given.
import { ConfigError } from "../../config.ts"
import { addressList, isEndpointUrl } from "../../config-channels.ts"
import type { ChimeraConfig } from "../../config-schema.ts"
import type { ConfiguredChannels, NotificationChannel, TicketSystem } from "../../domain/notifications.ts"
import { createEmailChannel } from "./email.ts"
import type { Fetch } from "./http.ts"
import { createJira } from "./jira.ts"
import { createPagerDutyChannel } from "./pagerduty.ts"
import { readPem, readSecret } from "./secrets.ts"
import { createServiceNow } from "./servicenow.ts"
import { createSlackChannel } from "./slack.ts"

export interface ChannelOptions {
  fetch?: Fetch
  /** Milliseconds since the epoch, for a Retry-After given as a date. */
  now?: () => number
}

export function channelsFromConfig(
  config: Pick<ChimeraConfig, "notifications" | "itsm">,
  options: ChannelOptions = {},
): ConfiguredChannels {
  return { channels: _channels(config.notifications, options), tickets: _tickets(config.itsm, options) }
}

function _channels(n: ChimeraConfig["notifications"], options: ChannelOptions): NotificationChannel[] {
  const http = { ...options, timeoutMs: n.timeout_seconds * 1000 }
  const out: NotificationChannel[] = []
  const webhookUrl = readSecret("notifications.slack_webhook_url", n.slack_webhook_url, n.slack_webhook_url_file)
  if (webhookUrl !== "") {
    // A URL from a file has not passed the schema's check; a bad one must fail here, not at send time.
    if (!isEndpointUrl(webhookUrl))
      throw new ConfigError(
        "config: notifications.slack_webhook_url_file: expected an https URL (http only to a loopback address) in the file",
      )
    out.push(createSlackChannel({ webhookUrl }, http))
  }
  const routingKey = readSecret("notifications.pagerduty_api_key", n.pagerduty_api_key, n.pagerduty_api_key_file)
  if (routingKey !== "") out.push(createPagerDutyChannel({ routingKey, url: n.pagerduty_url }, http))
  if (n.email_smtp_host !== "")
    out.push(
      createEmailChannel(
        {
          host: n.email_smtp_host,
          port: n.email_smtp_port,
          from: n.email_from,
          to: addressList(n.email_to),
          username: n.email_username,
          password: readSecret("notifications.email_password", n.email_password, n.email_password_file),
          starttls: n.email_starttls,
          ca: readPem("notifications.email_ca_file", n.email_ca_file),
        },
        http,
      ),
    )
  return out
}

function _tickets(s: ChimeraConfig["itsm"], options: ChannelOptions): TicketSystem | null {
  if (s.provider === "") return null
  const http = { ...options, timeoutMs: s.timeout_seconds * 1000 }
  const secret = readSecret("itsm.api_key", s.api_key, s.api_key_file)
  if (s.provider === "servicenow")
    return createServiceNow({ url: s.url, username: s.username, password: secret, closeCode: s.close_code }, http)
  return createJira(
    {
      url: s.url,
      username: s.username,
      apiToken: secret,
      projectKey: s.project_key,
      issueType: s.issue_type,
      doneTransition: s.done_transition,
    },
    http,
  )
}
