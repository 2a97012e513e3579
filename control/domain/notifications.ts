// The ports through which the control plane tells people about incidents: notification channels
// (Slack, PagerDuty, email) and a ticket system (ServiceNow, Jira). They are shaped for an outbox
// worker: a `Notice` is plain data that can be stored and read back (the schema parses it at that edge),
// and every call answers a `DeliveryResult` value instead of throwing, saying whether the failure is
// worth retrying and when. A 429 or a 5xx or a lost connection is retryable (with the service's
// Retry-After, if it gave one); a refused credential or a payload the service rejects is not, since
// sending it again cannot succeed. Error texts name the channel and the cause, and never carry a secret
// (a Slack webhook URL, a routing key, a password): they end up in the store and in answers.
//
// The adapters live in control/adapters/notify/; `channelsFromConfig(config)` there (index.ts) builds the
// configured set as `ConfiguredChannels`.
import { z } from "zod"

/** Where an incident is in its life: each step is delivered once per incident; `test` is a probe. */
export const NoticeStep = z.enum(["opened", "updated", "resolved", "test"])
export type NoticeStep = z.infer<typeof NoticeStep>

export const NoticeSeverity = z.enum(["info", "warning", "critical"])
export type NoticeSeverity = z.infer<typeof NoticeSeverity>

export const Notice = z
  .object({
    /** Stable per incident: PagerDuty's dedup_key and the ticket's correlation derive from it. */
    incidentId: z.string().min(1),
    step: NoticeStep,
    node: z.string(),
    /** What went wrong, as a short code ("heal-failed", "unreachable"). */
    problem: z.string(),
    severity: NoticeSeverity,
    title: z.string().min(1),
    message: z.string(),
    closures: z.object({ desired: z.string().optional(), current: z.string().optional() }).strict(),
    dashboardUrl: z.string().optional(),
    at: z.iso.datetime(),
  })
  .strict()
export type Notice = z.infer<typeof Notice>

export interface DeliveryOk {
  ok: true
  /** The service's id for what was made: a ticket's id for `create`, PagerDuty's dedup_key. */
  externalId?: string
  /** What a person sees for it, where it differs from the id (ServiceNow's INC0010001). */
  label?: string
  /** Where a person can open it, when the service says. */
  url?: string
}

export interface DeliveryFailure {
  ok: false
  /** Sending the same thing again may succeed (429, 5xx, timeout, connection lost). */
  retryable: boolean
  /** How long the service asked us to wait (its Retry-After), when it did. */
  retryAfterMs?: number
  /** Names the channel and the cause; never holds a secret. */
  error: string
}

export type DeliveryResult = DeliveryOk | DeliveryFailure

export type ChannelName = "slack" | "pagerduty" | "email"
export type TicketSystemName = "servicenow" | "jira"

/**
 * One way to reach people. `send` delivers an alert for opened, updated and test notices and a
 * resolution for resolved ones (PagerDuty resolves the alert it triggered with the same dedup_key).
 */
export interface NotificationChannel {
  readonly name: ChannelName
  send(notice: Notice): Promise<DeliveryResult>
}

export interface Ticket {
  id: string
  label: string
  /** The service's own state name ("New", "Resolved", "To Do", "Done"). */
  status: string
  resolved: boolean
  url?: string
}

export type TicketLookup = { ok: true; ticket: Ticket | null } | DeliveryFailure

/**
 * An ITSM tool holding one ticket per incident. `create` answers the ticket's id as `externalId`; the
 * caller keeps it and passes it to `update` (a comment or work note) and `resolve`. `get` answers null
 * for a ticket the service does not know. `check` proves, without writing anything, that the URL, the
 * credential and what tickets are made in (Jira's project and issue type) work.
 */
export interface TicketSystem {
  readonly name: TicketSystemName
  create(notice: Notice): Promise<DeliveryResult>
  update(ticketId: string, notice: Notice): Promise<DeliveryResult>
  resolve(ticketId: string, notice: Notice): Promise<DeliveryResult>
  get(ticketId: string): Promise<TicketLookup>
  check(): Promise<DeliveryResult>
}

/** What the configuration turns on: any number of channels, at most one ticket system. */
export interface ConfiguredChannels {
  channels: NotificationChannel[]
  tickets: TicketSystem | null
}
