// Local stand-ins for Slack's incoming webhooks and PagerDuty's Events API v2, checking what those
// services check and answering as they answer.
// Slack: POST to the webhook's secret path (anything else: 404 no_service), a JSON body with `text` or
// `blocks` (neither: 400 no_text), blocks within Block Kit's limits (else 400 invalid_blocks); 200 "ok".
// PagerDuty: POST /v2/enqueue with JSON, a known 32-character routing_key, an event_action, and for a
// trigger a payload with summary (≤1024), source and a severity of critical|error|warning|info; 202
// {status, message, dedup_key}, or 400 {status:"invalid event", message, errors[]}. It keeps each
// alert's state by dedup_key, so a test can see a trigger folded into one alert and resolved.
import { type FakeService, isJson, json, startFakeService } from "./fake-service.ts"

export interface SlackFake extends FakeService {
  /** The webhook URL to configure (its path is the secret). */
  webhookUrl: string
  /** The messages accepted, in order. */
  messages(): { text?: string; blocks?: Block[] }[]
}

export interface Block {
  type: string
  text?: { type: string; text: string; emoji?: boolean }
  fields?: { type: string; text: string }[]
  elements?: { type: string; text?: unknown; url?: string }[]
}
type Text = { type?: unknown; text?: unknown }

export function startSlack(secretPath = "/services/T0CHIMERA/B0CHIMERA/x9y8z7w6v5u4t3s2r1q0p9o8"): SlackFake {
  const fake = startFakeService((req) => {
    const text = (status: number, body: string) =>
      new Response(body, { status, headers: { "content-type": "text/html" } })
    if (req.method !== "POST" || req.path !== secretPath) return text(404, "no_service")
    if (!isJson(req.headers) || typeof req.body !== "object" || req.body === null) return text(400, "invalid_payload")
    const body = req.body as { text?: unknown; blocks?: unknown }
    if (body.text === undefined && body.blocks === undefined) return text(400, "no_text")
    if (body.text !== undefined && (typeof body.text !== "string" || body.text.length > 40_000))
      return text(400, "invalid_payload")
    if (body.blocks !== undefined && !_validBlocks(body.blocks)) return text(400, "invalid_blocks")
    return text(200, "ok")
  })
  return {
    ...fake,
    webhookUrl: `${fake.url}${secretPath}`,
    messages: () =>
      fake.received.filter((r) => r.status === 200).map((r) => r.body as { text?: string; blocks?: Block[] }),
  }
}

const _plain = (t: Text | undefined, max: number) =>
  t?.type === "plain_text" && typeof t.text === "string" && t.text.length > 0 && t.text.length <= max
const _textObject = (t: Text | undefined, max: number) =>
  (t?.type === "plain_text" || t?.type === "mrkdwn") &&
  typeof t.text === "string" &&
  t.text.length > 0 &&
  t.text.length <= max

function _validBlocks(blocks: unknown): boolean {
  if (!Array.isArray(blocks) || blocks.length === 0 || blocks.length > 50) return false
  return blocks.every((block: Record<string, unknown>) => {
    switch (block?.type) {
      case "header":
        return _plain(block.text as Text, 150)
      case "section": {
        const fields = block.fields as Text[] | undefined
        if (block.text === undefined && fields === undefined) return false
        if (block.text !== undefined && !_textObject(block.text as Text, 3000)) return false
        return fields === undefined || (fields.length <= 10 && fields.every((f) => _textObject(f, 2000)))
      }
      case "context": {
        const elements = block.elements as Text[] | undefined
        return Array.isArray(elements) && elements.length <= 10 && elements.every((e) => _textObject(e, 2000))
      }
      case "actions": {
        const elements = block.elements as { type?: string; text?: Text; url?: unknown }[] | undefined
        return (
          Array.isArray(elements) &&
          elements.length <= 25 &&
          elements.every(
            (e) =>
              e.type === "button" &&
              _plain(e.text, 75) &&
              (e.url === undefined ||
                (typeof e.url === "string" && /^https?:\/\//.test(e.url) && e.url.length <= 3000)),
          )
        )
      }
      case "divider":
        return true
      default:
        return false
    }
  })
}

export interface PagerDutyFake extends FakeService {
  enqueueUrl: string
  routingKey: string
  /** Accepted events, in order. */
  events(): PagerDutyEvent[]
  /** Each alert's state by dedup_key. */
  alerts: Map<string, "triggered" | "resolved">
}

export interface PagerDutyEvent {
  routing_key: string
  event_action: "trigger" | "acknowledge" | "resolve"
  dedup_key?: string
  payload?: { summary: string; source: string; severity: string; custom_details?: Record<string, unknown> }
  links?: { href: string; text?: string }[]
}

const SEVERITIES = ["critical", "error", "warning", "info"]

export function startPagerDuty(routingKey = "R0UT1NGKEYCH1MERA0000000000000AB"): PagerDutyFake {
  const alerts = new Map<string, "triggered" | "resolved">()
  const invalid = (...errors: string[]) =>
    json(400, { status: "invalid event", message: "Event object is invalid", errors })
  let counter = 0
  const fake = startFakeService((req) => {
    if (req.method !== "POST" || req.path !== "/v2/enqueue") return json(404, { status: "not found" })
    if (!isJson(req.headers) || typeof req.body !== "object" || req.body === null)
      return json(400, { status: "invalid request", message: "Invalid JSON", errors: ["Request body is not JSON"] })
    const e = req.body as Partial<PagerDutyEvent> & Record<string, unknown>
    if (typeof e.routing_key !== "string" || e.routing_key.length !== 32)
      return invalid("Length of 'routing_key' is incorrect (should be 32 characters)")
    if (e.routing_key !== routingKey) return invalid("Invalid routing key")
    if (!["trigger", "acknowledge", "resolve"].includes(String(e.event_action)))
      return invalid("'event_action' is missing or blank")
    if (e.dedup_key !== undefined && (typeof e.dedup_key !== "string" || e.dedup_key.length > 255))
      return invalid("'dedup_key' must be a string of at most 255 characters")
    if (e.event_action !== "trigger" && typeof e.dedup_key !== "string") return invalid("'dedup_key' is missing")
    if (e.event_action === "trigger") {
      const p = e.payload
      const errors: string[] = []
      if (typeof p?.summary !== "string" || p.summary === "" || p.summary.length > 1024)
        errors.push("'payload.summary' is missing, blank or too long")
      if (typeof p?.source !== "string" || p.source === "") errors.push("'payload.source' is missing or blank")
      if (!SEVERITIES.includes(String(p?.severity))) errors.push("'payload.severity' is invalid")
      if (p?.custom_details !== undefined && (typeof p.custom_details !== "object" || p.custom_details === null))
        errors.push("'payload.custom_details' must be an object")
      if (errors.length > 0) return invalid(...errors)
    }
    const dedupKey = e.dedup_key ?? `generated-${++counter}`
    if (e.event_action === "trigger") alerts.set(dedupKey, "triggered")
    if (e.event_action === "resolve" && alerts.has(dedupKey)) alerts.set(dedupKey, "resolved")
    return json(202, { status: "success", message: "Event processed", dedup_key: dedupKey })
  })
  return {
    ...fake,
    enqueueUrl: `${fake.url}/v2/enqueue`,
    routingKey,
    alerts,
    events: () => fake.received.filter((r) => r.status === 202).map((r) => r.body as PagerDutyEvent),
  }
}
