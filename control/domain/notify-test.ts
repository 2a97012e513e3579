// `chimera notify test`: a test notice through each configured channel, and what each answered, so an
// operator learns that Slack refuses the webhook before the first real incident does. All channels are
// tried at once, each bounded by its own timeout. PagerDuty's test alert is resolved right after it
// is triggered, so nobody is left with an open page. The ticket system is checked without writing
// (TicketSystem.check: the credential and, for Jira, the project and issue type), so no test ticket
// is left behind in the ITSM tool.
import { z } from "zod"
import { invalid } from "./errors.ts"
import type { ConfiguredChannels, DeliveryFailure, Notice, NotificationChannel } from "./notifications.ts"
import type { Clock } from "./ports.ts"

export const TestTarget = z.enum(["slack", "pagerduty", "email", "itsm"])
export type TestTarget = z.infer<typeof TestTarget>

export interface ChannelOutcome {
  channel: TestTarget
  /** The service behind it: "slack", "servicenow", "jira"… */
  service: string
  ok: boolean
  /** What happened, in a sentence; for a failure, the channel's error (it never holds a secret). */
  detail: string
  retryable?: boolean
}

const HOW_TO_CONFIGURE: Record<TestTarget, string> = {
  slack: "set notifications.slack_webhook_url",
  pagerduty: "set notifications.pagerduty_api_key",
  email: "set notifications.email_smtp_host, email_from and email_to",
  itsm: "set itsm.provider, url, username and api_key",
}

export function createNotifyTest({ configured, clock }: { configured: ConfiguredChannels; clock: Clock }) {
  const targets = (): TestTarget[] => [
    ...configured.channels.map((c) => c.name),
    ...(configured.tickets ? (["itsm"] as const) : []),
  ]

  const _notice = (by: string, channel: string): Notice => ({
    incidentId: `notify-test-${crypto.randomUUID()}`,
    step: "test",
    node: "",
    problem: "notify-test",
    severity: "info",
    title: "Chimera test notification",
    message: `Sent by ${by} with \`chimera notify test\`: if you can read this, Chimera's ${channel} channel works.`,
    closures: {},
    at: clock.now().toISOString(),
  })

  const _channel = async (channel: NotificationChannel, by: string): Promise<ChannelOutcome> => {
    const notice = _notice(by, channel.name)
    const sent = await channel.send(notice)
    if (!sent.ok) return _failed(channel.name, channel.name, sent)
    if (channel.name !== "pagerduty") return { channel: channel.name, service: channel.name, ok: true, detail: "sent" }
    const resolved = await channel.send({ ...notice, step: "resolved" })
    if (!resolved.ok)
      return _failed("pagerduty", "pagerduty", {
        ...resolved,
        error: `${resolved.error} (the test alert was triggered but is still open: resolve it in PagerDuty)`,
      })
    return { channel: "pagerduty", service: "pagerduty", ok: true, detail: "triggered and resolved a test alert" }
  }

  const _tickets = async (): Promise<ChannelOutcome> => {
    const tickets = configured.tickets
    if (!tickets) throw new Error("no ticket system is configured")
    const checked = await tickets.check()
    if (!checked.ok) return _failed("itsm", tickets.name, checked)
    const what = tickets.name === "jira" ? "credential, project and issue type" : "credential and access to incidents"
    return { channel: "itsm", service: tickets.name, ok: true, detail: `${what} checked (nothing written)` }
  }

  return {
    /** The channels a test would reach, in the order they are reported. */
    targets,
    async run(by: string, only?: TestTarget): Promise<{ results: ChannelOutcome[] }> {
      const chosen = only ? [only] : targets()
      if (only && !targets().includes(only))
        throw invalid(`the ${only} channel is not configured: ${HOW_TO_CONFIGURE[only]}`, {
          configured: targets(),
        })
      const results = await Promise.all(
        chosen.map(async (target): Promise<ChannelOutcome> => {
          const channel = configured.channels.find((c) => c.name === target)
          try {
            return channel ? await _channel(channel, by) : await _tickets()
          } catch (err) {
            // Adapters answer failures as values; a throw is a bug, reported without its stack.
            const detail = `${target}: failed unexpectedly (${(err as Error).name})`
            return { channel: target, service: channel?.name ?? configured.tickets?.name ?? target, ok: false, detail }
          }
        }),
      )
      return { results }
    },
  }
}

export type NotifyTest = ReturnType<typeof createNotifyTest>

function _failed(channel: TestTarget, service: string, failure: DeliveryFailure): ChannelOutcome {
  return { channel, service, ok: false, detail: failure.error, retryable: failure.retryable }
}
