// Times in text a person reads away from the dashboard: incident messages and what Slack, email,
// PagerDuty, ServiceNow and Jira receive. The reader's time zone is not known there, and one notice
// goes to readers in many, so the time is UTC and says so, to the second: "2026-12-07 10:11:12 UTC".
// ISO 8601 with its "T", milliseconds and "Z" reads as a machine's; fields a machine reads (a notice's
// `at`, PagerDuty's timestamp, an incident's openedAt) keep it.

/** `time` (epoch milliseconds, or any date string Date reads) as "YYYY-MM-DD HH:MM:SS UTC". */
export function utcText(time: number | string): string {
  const d = new Date(time)
  if (Number.isNaN(d.getTime())) return String(time)
  const iso = d.toISOString()
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`
}
