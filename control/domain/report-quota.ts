// What one node may report: request bytes and reports per window, so one node credential (a broken
// heal loop, or a stolen credential) cannot fill the database or hold the store's writer while every
// other node waits. A bucket per node refills continuously at its window's rate. A batch is admitted
// while the node's bucket is above zero, before its body is read, and charged once it is known, so
// any single valid batch gets through (the bucket may go below zero) and the node then waits for the
// debt to refill. Past the quota the answer is a 429 with Retry-After, which agents honour (their
// spool keeps the reports). Buckets live in memory on the clock port; with several control-plane
// replicas each counts its own share, as with the rate limits.
// A second bucket holds a day's bytes: at 4 MiB a minute, one node credential could store about 6 GB of
// events a day, kept for the retention period. A node that was quiet may still send its spool at the
// minute's rate; one that keeps it up is held to its day's share, refilled over 24 hours.
import { ChimeraError } from "./errors.ts"
import type { Clock } from "./ports.ts"

export interface ReportQuotaSettings {
  /** Bytes of report bodies per node per window ([limits] node_report_bytes). */
  bytes: number
  /** Reports per node per window ([limits] node_reports). */
  reports: number
  windowMs: number
  /** Bytes of report bodies per node per day ([limits] node_report_bytes_per_day). */
  dayBytes: number
}

const DAY_MS = 86_400_000

export const DEFAULT_REPORT_QUOTA: ReportQuotaSettings = {
  bytes: 4 * 1024 * 1024,
  reports: 600,
  windowMs: 60_000,
  dayBytes: 256 * 1024 * 1024,
}

interface Bucket {
  bytes: number
  reports: number
  day: number
  atMs: number
}

export function createReportQuota(settings: ReportQuotaSettings, clock: Clock) {
  const buckets = new Map<string, Bucket>()
  let sweptAt = 0

  /** The node's bucket refilled up to now; a full one is not stored, so memory follows busy nodes. */
  const bucketOf = (nodeId: string, nowMs: number): Bucket => {
    const b = buckets.get(nodeId)
    if (!b) return { bytes: settings.bytes, reports: settings.reports, day: settings.dayBytes, atMs: nowMs }
    const elapsed = Math.max(0, nowMs - b.atMs)
    const share = elapsed / settings.windowMs
    return {
      bytes: Math.min(settings.bytes, b.bytes + share * settings.bytes),
      reports: Math.min(settings.reports, b.reports + share * settings.reports),
      day: Math.min(settings.dayBytes, b.day + (elapsed / DAY_MS) * settings.dayBytes),
      atMs: nowMs,
    }
  }

  const sweep = (nowMs: number) => {
    if (nowMs - sweptAt < settings.windowMs) return
    sweptAt = nowMs
    for (const id of buckets.keys()) {
      const b = bucketOf(id, nowMs)
      if (b.bytes >= settings.bytes && b.reports >= settings.reports && b.day >= settings.dayBytes) buckets.delete(id)
    }
  }

  return {
    settings,
    /** Throws the 429 (RATE_LIMIT_EXCEEDED, `retryAfter` in seconds) when the node has spent its quota. */
    admit(nodeId: string): void {
      const nowMs = clock.now().getTime()
      sweep(nowMs)
      const b = bucketOf(nodeId, nowMs)
      if (b.bytes > 0 && b.reports > 0 && b.day > 0) return
      const wait = Math.max(
        Math.max(-b.bytes / settings.bytes, -b.reports / settings.reports, 0) * settings.windowMs,
        // Back to a minute's bytes of the day's share, not to one byte: a node is not let in a byte at a time.
        b.day > 0 ? 0 : ((Math.min(settings.bytes, settings.dayBytes) - b.day) / settings.dayBytes) * DAY_MS,
      )
      const retryAfter = Math.max(1, Math.ceil(wait / 1000))
      const quota =
        b.day > 0
          ? `[limits] node_report_bytes ${settings.bytes}, node_reports ${settings.reports} per ${settings.windowMs / 1000} s`
          : `[limits] node_report_bytes_per_day ${settings.dayBytes}`
      throw new ChimeraError(
        "RATE_LIMIT_EXCEEDED",
        `node ${JSON.stringify(nodeId)} has sent more reports than its quota (${quota}); its agent keeps them spooled and retries in ${retryAfter} s`,
        {
          retryAfter,
          ...(b.day > 0
            ? { limit: settings.reports, window: `${settings.windowMs / 1000}s` }
            : { limit: settings.dayBytes, window: `${DAY_MS / 1000}s` }),
          resetAt: new Date(nowMs + retryAfter * 1000).toISOString(),
        },
      )
    },
    /** Spends what an admitted batch cost. */
    charge(nodeId: string, bytes: number, reports: number): void {
      const nowMs = clock.now().getTime()
      const b = bucketOf(nodeId, nowMs)
      buckets.set(nodeId, { bytes: b.bytes - bytes, reports: b.reports - reports, day: b.day - bytes, atMs: nowMs })
    },
  }
}

export type ReportQuota = ReturnType<typeof createReportQuota>
