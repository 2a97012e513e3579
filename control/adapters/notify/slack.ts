// Slack through an incoming webhook: one Block Kit message per notice (a header, the facts as fields,
// the message, the closures and a button to the dashboard), with `text` as the fallback Slack shows in
// notifications. The webhook URL is the credential, so no error ever names more of it than its host.
// Slack answers 200 "ok", or a short code: 400 invalid_payload / invalid_blocks, 403 invalid_token or
// action_prohibited, 404 no_service or channel_not_found, 410 channel_is_archived, 429 with
// Retry-After, 5xx rollup_error. Text that reaches mrkdwn is escaped (&, <, >): a node named
// "<!channel>" must not page a whole Slack channel.
import type { DeliveryResult, Notice, NotificationChannel } from "../../domain/notifications.ts"
import { exchange, failure, type HttpOptions, isFailure } from "./http.ts"
import { clip, facts, headline } from "./notice-text.ts"

export interface SlackSettings {
  webhookUrl: string
}

const SEVERITY_ICON: Record<Notice["severity"], string> = {
  info: ":information_source:",
  warning: ":warning:",
  critical: ":rotating_light:",
}

const HINTS: Record<string, string> = {
  no_service: "the webhook URL is wrong or was revoked",
  invalid_token: "the webhook URL is wrong or was revoked",
  channel_not_found: "the webhook's channel no longer exists",
  channel_is_archived: "the webhook's channel is archived",
  action_prohibited: "the workspace forbids this webhook",
}

export function createSlackChannel(settings: SlackSettings, options: HttpOptions): NotificationChannel {
  return {
    name: "slack",
    async send(notice: Notice): Promise<DeliveryResult> {
      const call = {
        channel: "slack",
        method: "POST" as const,
        url: settings.webhookUrl,
        body: slackMessage(notice),
        secrets: [settings.webhookUrl, new URL(settings.webhookUrl).pathname],
      }
      const answer = await exchange(call, options)
      if (isFailure(answer)) return answer
      if (answer.status === 200) return { ok: true }
      const code = answer.text.trim()
      return failure(call, answer, code, options, HINTS[code] ?? "")
    },
  }
}

/** The Block Kit message for a notice (exported for the tests' fake, which checks its shape). */
export function slackMessage(notice: Notice) {
  const icon = notice.step === "resolved" ? ":white_check_mark:" : SEVERITY_ICON[notice.severity]
  const title = headline(notice)
  const fields = facts(notice).filter(([label]) => !label.endsWith("closure") && label !== "Dashboard")
  const closures = facts(notice).filter(([label]) => label.endsWith("closure"))
  const blocks: unknown[] = [
    // Header text is plain_text (no mrkdwn to escape) and at most 150 characters.
    { type: "header", text: { type: "plain_text", text: clip(title, 150), emoji: true } },
    {
      type: "section",
      fields: fields.map(([label, value]) => ({
        type: "mrkdwn",
        text: clip(`*${label}*\n${mrkdwnEscape(value)}`, 2000),
      })),
    },
  ]
  if (notice.message.trim() !== "")
    blocks.push({ type: "section", text: { type: "mrkdwn", text: clip(mrkdwnEscape(notice.message.trim()), 3000) } })
  if (closures.length > 0)
    blocks.push({
      type: "context",
      elements: closures.map(([label, value]) => ({
        type: "mrkdwn",
        text: clip(`${label}: \`${mrkdwnEscape(value)}\``, 2000),
      })),
    })
  if (notice.dashboardUrl && /^https?:\/\//.test(notice.dashboardUrl) && notice.dashboardUrl.length <= 3000)
    blocks.push({
      type: "actions",
      elements: [{ type: "button", text: { type: "plain_text", text: "Open dashboard" }, url: notice.dashboardUrl }],
    })
  return { text: clip(`${icon} ${mrkdwnEscape(title)}`, 3000), blocks }
}

/** Slack's mrkdwn escaping: these three characters only, as its formatting guide prescribes. */
export function mrkdwnEscape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
}
