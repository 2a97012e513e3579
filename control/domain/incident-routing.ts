// Who hears of each step of an incident. An opening goes to every configured channel whose minimum
// severity it reaches; PagerDuty only for the problems that page, and during quiet hours only for
// critical ones (nobody is woken for a warning at 3 a.m.; chat, mail and the ticket still get it). An
// update goes to the ticket alone, as a note (chat channels would only repeat themselves). A
// resolution goes to exactly the channels that heard of the opening, so PagerDuty resolves only what
// it triggered and nobody reads "resolved" about an incident they never saw.
import type { Incident, Problem, Severity } from "./incident-model.ts"
import { atLeast } from "./incident-model.ts"

/** The kinds of destination an incident step can go to; `ticket` is the configured ITSM tool. */
export type ChannelKind = "slack" | "pagerduty" | "email" | "ticket"

export interface IncidentPolicy {
  unreachableAfterMs: number
  driftUnhealedAfterMs: number
  page: readonly Problem[]
  /** Minutes after midnight in `timeZone`: [start, end), wrapping past midnight when start > end. */
  quietHours: { start: number; end: number } | null
  timeZone: string
  minSeverity: Record<ChannelKind, Severity>
  /** At most one ticket note per incident this often, however often the problem repeats. */
  updateEveryMs: number
  /** Where messages link to; "" until the control plane knows its own address. */
  dashboardUrl: string
}

export interface IncidentSettings {
  unreachable_after_seconds: number
  drift_unhealed_after_seconds: number
  page: Problem[]
  quiet_hours: string
  quiet_hours_timezone: string
  slack_min_severity: Severity
  email_min_severity: Severity
  pagerduty_min_severity: Severity
  ticket_min_severity: Severity
  update_every_seconds: number
  dashboard_url: string
}

const minutes = (hhmm: string) => {
  const [h = "0", m = "0"] = hhmm.split(":")
  return Number(h) * 60 + Number(m)
}

/** The policy from an `[incidents]` section (already validated by the config schema). */
export function incidentPolicy(s: IncidentSettings): IncidentPolicy {
  const [from, to] = s.quiet_hours === "" ? [] : s.quiet_hours.split("-")
  return {
    unreachableAfterMs: s.unreachable_after_seconds * 1000,
    driftUnhealedAfterMs: s.drift_unhealed_after_seconds * 1000,
    page: s.page,
    quietHours: from && to ? { start: minutes(from), end: minutes(to) } : null,
    timeZone: s.quiet_hours_timezone,
    minSeverity: {
      slack: s.slack_min_severity,
      email: s.email_min_severity,
      pagerduty: s.pagerduty_min_severity,
      ticket: s.ticket_min_severity,
    },
    updateEveryMs: s.update_every_seconds * 1000,
    dashboardUrl: s.dashboard_url,
  }
}

/** Whether `at` falls in the quiet hours, read on the wall clock of the policy's time zone. */
export function isQuiet(policy: IncidentPolicy, at: Date): boolean {
  const q = policy.quietHours
  if (!q || q.start === q.end) return false
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: policy.timeZone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(at)
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0)
  const now = get("hour") * 60 + get("minute")
  return q.start < q.end ? now >= q.start && now < q.end : now >= q.start || now < q.end
}

/** The kind of a configured channel's name: ServiceNow and Jira are both the ticket. */
export const kindOf = (name: string): ChannelKind =>
  name === "slack" || name === "pagerduty" || name === "email" ? name : "ticket"

/** The channels (among `configured`, by name) that hear of an incident's opening at `at`. */
export function openingChannels(
  policy: IncidentPolicy,
  configured: readonly string[],
  incident: Pick<Incident, "problem" | "severity">,
  at: Date,
): string[] {
  return configured.filter((name) => {
    const kind = kindOf(name)
    if (!atLeast(incident.severity, policy.minSeverity[kind])) return false
    if (kind !== "pagerduty") return true
    if (!policy.page.includes(incident.problem)) return false
    return incident.severity === "critical" || !isQuiet(policy, at)
  })
}
