// PagerDuty through the Events API v2: a `trigger` when an incident opens or changes, a `resolve` with
// the same dedup_key when it is resolved. The dedup_key is derived from the incident's id alone, so a
// retried trigger folds into the alert PagerDuty already has instead of paging twice, and the resolve
// finds it. PagerDuty answers 202 {status:"success", dedup_key}; 400 {status:"invalid event", message,
// errors[]} for a payload or routing key it refuses (not retryable); 429 when the integration is over
// its rate; 5xx. The routing key is the credential and never appears in an error.
import type { DeliveryResult, Notice, NotificationChannel } from "../../domain/notifications.ts"
import { exchange, failure, type HttpOptions, isFailure } from "./http.ts"
import { clip, facts, headline } from "./notice-text.ts"

export interface PagerDutySettings {
  routingKey: string
  /** The enqueue endpoint, https://events.pagerduty.com/v2/enqueue unless a proxy is set. */
  url: string
}

/** PagerDuty's severities are critical, error, warning and info; a critical incident pages as critical. */
const SEVERITY: Record<Notice["severity"], "critical" | "warning" | "info"> = {
  critical: "critical",
  warning: "warning",
  info: "info",
}

export const dedupKey = (notice: Notice) => clip(`chimera-${notice.incidentId}`, 255)

export function createPagerDutyChannel(settings: PagerDutySettings, options: HttpOptions): NotificationChannel {
  return {
    name: "pagerduty",
    async send(notice: Notice): Promise<DeliveryResult> {
      const call = {
        channel: "pagerduty",
        method: "POST" as const,
        url: settings.url,
        body: pagerDutyEvent(settings.routingKey, notice),
        secrets: [settings.routingKey],
      }
      const answer = await exchange(call, options)
      if (isFailure(answer)) return answer
      const body = (answer.json ?? {}) as { dedup_key?: unknown; message?: unknown; errors?: unknown }
      if (answer.status === 202 || answer.status === 200)
        return { ok: true, externalId: typeof body.dedup_key === "string" ? body.dedup_key : dedupKey(notice) }
      const errors = Array.isArray(body.errors) ? body.errors.filter((e) => typeof e === "string") : []
      const reason = [typeof body.message === "string" ? body.message : answer.text, ...errors].join(": ")
      const hint = errors.some((e) => /routing.?key/i.test(e)) ? "check notifications.pagerduty_api_key" : ""
      return failure(call, answer, reason, options, hint)
    },
  }
}

/** The Events API v2 event for a notice. */
export function pagerDutyEvent(routingKey: string, notice: Notice) {
  if (notice.step === "resolved")
    return { routing_key: routingKey, event_action: "resolve" as const, dedup_key: dedupKey(notice) }
  const links = notice.dashboardUrl ? [{ href: notice.dashboardUrl, text: "Chimera dashboard" }] : []
  return {
    routing_key: routingKey,
    event_action: "trigger" as const,
    dedup_key: dedupKey(notice),
    payload: {
      summary: clip(headline(notice), 1024),
      source: clip(notice.node || "chimera", 255),
      severity: SEVERITY[notice.severity],
      timestamp: notice.at,
      component: notice.node || undefined,
      class: notice.problem,
      custom_details: { message: notice.message, ...Object.fromEntries(facts(notice)) },
    },
    client: "Chimera",
    ...(notice.dashboardUrl ? { client_url: notice.dashboardUrl } : {}),
    links,
  }
}
