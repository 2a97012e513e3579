// What the spool gives up when it outgrows its size cap (a control plane unreachable for days, a node
// drifting in a loop). Reports are not equal: a drift seen, a heal started, a reboot asked for are
// progress, superseded by whatever came next; a heal's outcome (and the agent's own loss reports) is
// what an operator must see. So the oldest progress reports go first; heal outcomes go only when there
// is nothing else left to give, oldest first. Nothing goes without a word: what was dropped becomes one
// `reports.compacted` report, counted by type, with the heal outcomes lost counted apart, in the place
// (and under the sequence number) of the newest report it replaced. An earlier summary still unsent is
// folded into the new one, so compaction never piles summaries up. Pure: the spool does the writing.
import type { AgentReport, AgentReportType } from "../protocol/agent.ts"

/** Reports whose loss an operator must hear about, dropped only when nothing else is left. */
const CRITICAL: ReadonlySet<AgentReportType> = new Set([
  "heal.succeeded",
  "heal.failed",
  "report.quarantined",
  "boot.rolled-back",
])

export const isCriticalReport = (r: AgentReport) => CRITICAL.has(r.type) || r.type === "reports.compacted"

/** The bytes one report takes in the spool file (its JSON line). */
export const reportBytes = (r: AgentReport) => Buffer.byteLength(JSON.stringify(r)) + 1

export interface Compaction {
  /** The reports kept, in sequence order, the summary among them. */
  kept: AgentReport[]
  /** The new summary, or null when nothing had to go. */
  summary: Extract<AgentReport, { type: "reports.compacted" }> | null
}

/**
 * Drops reports from `queue` (oldest first, progress before outcomes) until the rest and the summary
 * fit in `targetBytes`. `maxBytes` is the configured cap, recorded in the summary.
 */
export function compactReports(queue: AgentReport[], targetBytes: number, maxBytes: number): Compaction {
  let bytes = queue.reduce((n, r) => n + reportBytes(r), 0)
  if (bytes <= targetBytes) return { kept: queue, summary: null }
  const gone = new Set<AgentReport>()
  // Room for the summary itself (a few hundred bytes).
  const budget = targetBytes - 512
  const drop = (critical: boolean) => {
    for (const r of queue) {
      if (bytes <= budget) return
      if (gone.has(r) || isCriticalReport(r) !== critical || r.type === "reports.compacted") continue
      gone.add(r)
      bytes -= reportBytes(r)
    }
  }
  drop(false)
  drop(true)
  // An older summary still unsent is folded into the new one.
  for (const r of queue) if (r.type === "reports.compacted") gone.add(r)
  const dropped = [...gone]
  if (dropped.length === 0) return { kept: queue, summary: null }
  const byType: Record<string, number> = {}
  let count = 0
  let criticalDropped = 0
  let fromSeq = Number.POSITIVE_INFINITY
  let toSeq = 0
  for (const r of dropped) {
    if (r.type === "reports.compacted") {
      for (const [type, n] of Object.entries(r.data.byType)) byType[type] = (byType[type] ?? 0) + n
      count += r.data.dropped
      criticalDropped += r.data.criticalDropped
      fromSeq = Math.min(fromSeq, r.data.fromSeq)
    } else {
      byType[r.type] = (byType[r.type] ?? 0) + 1
      count++
      if (isCriticalReport(r)) criticalDropped++
      fromSeq = Math.min(fromSeq, r.seq)
    }
    toSeq = Math.max(toSeq, r.seq)
  }
  const last = dropped.reduce((a, b) => (b.seq > a.seq ? b : a))
  const summary: Compaction["summary"] = {
    seq: toSeq,
    at: last.at,
    type: "reports.compacted",
    data: { fromSeq, toSeq, dropped: count, byType, criticalDropped, maxBytes },
  }
  const kept = queue.filter((r) => !gone.has(r))
  const after = kept.findIndex((r) => r.seq > toSeq)
  kept.splice(after === -1 ? kept.length : after, 0, summary)
  return { kept, summary }
}
