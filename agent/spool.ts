// The report spool: every drift and heal report is written here, fsync'd, BEFORE anyone tries to send
// it, so a report survives the agent crashing, the node rebooting and the control plane being down.
// The file is JSON lines. The first line is a header holding the highest sequence number ever issued
// and the highest one the control plane acknowledged; every other line is one report. Appends go to
// the end; acknowledgements rewrite the file (temp file, fsync, rename, fsync of the directory) with the
// header and the reports still unacknowledged. Because the header keeps `lastSeq`, a sequence number is
// never issued twice, even after compaction has removed every report. A crash can tear only the last
// line (an append in progress); it is skipped on open, and the file is rewritten so the next append
// does not land on the torn fragment. The unacknowledged reports are kept under a size cap (maxBytes):
// past it the file is compacted to three quarters of the cap, as spool-compaction.ts decides, so a
// control plane down for days cannot fill the node's disk. A report the control plane refused for good
// is set aside (`setAside`) rather than holding up the ones behind it.
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs"
import { z } from "zod"
import { AgentReport } from "../protocol/agent.ts"
import { createLogger } from "../protocol/log.ts"
import { writeFileDurably } from "./durable-file.ts"
import { compactReports, reportBytes } from "./spool-compaction.ts"

const log = createLogger("spool")

const Header = z.object({
  spool: z.literal(1),
  lastSeq: z.number().int().nonnegative(),
  ackedSeq: z.number().int().nonnegative(),
})

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never
/** A report before the spool stamps it with its sequence number and time. */
export type ReportInput = DistributiveOmit<AgentReport, "seq" | "at">

export interface Spool {
  /** Stamps `report` with the next sequence number, makes it durable and returns it. */
  append(report: ReportInput): AgentReport
  /** Unacknowledged reports, oldest first, at most `limit`. */
  pending(limit?: number): AgentReport[]
  /** Records that the control plane made every report up to `seq` durable; drops them from the file. */
  ack(seq: number): void
  /**
   * Drops the oldest pending report, which the control plane refused for good (the caller keeps it
   * elsewhere and reports that); the reports behind it go on.
   */
  setAside(seq: number): void
  /** Bytes of the unacknowledged reports in the file. */
  readonly bytes: number
  readonly lastSeq: number
  readonly ackedSeq: number
  /** Called after each append (the sender waits on it). */
  onAppend(listener: () => void): void
  close(): void
}

/** The default cap on unacknowledged reports: some 200 failed heals with full output, or 50,000 drifts. */
export const DEFAULT_SPOOL_MAX_BYTES = 16 * 1024 * 1024

export interface SpoolOptions {
  /** Cap on the unacknowledged reports' bytes; past it the oldest, least important are compacted. */
  maxBytes?: number
}

export function openSpool(path: string, opts: SpoolOptions = {}): Spool {
  const maxBytes = opts.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES
  const loaded = _load(path)
  let { lastSeq, ackedSeq } = loaded
  let queue = loaded.reports.filter((r) => r.seq > ackedSeq)
  let bytes = queue.reduce((n, r) => n + reportBytes(r), 0)
  const listeners: Array<() => void> = []
  _rewrite(path, lastSeq, ackedSeq, queue)
  let fd: number | null = openSync(path, "a", 0o600)

  /** Rewrites the file with `rest` and reopens it for appends, whether or not the rewrite succeeded. */
  const rewrite = (upTo: number, rest: AgentReport[]) => {
    try {
      _rewrite(path, lastSeq, upTo, rest)
    } finally {
      // Whether or not the rewrite got as far as its rename, the path now holds the old file or the new
      // one, both whole: appends go on there, never to a closed descriptor or an unlinked file.
      if (fd !== null) closeSync(fd)
      fd = null
      fd = openSync(path, "a", 0o600)
    }
    // Only a rewrite that succeeded forgets anything; a failed one (a full disk) is tried again later.
    ackedSeq = upTo
    queue = rest
    bytes = rest.reduce((n, r) => n + reportBytes(r), 0)
  }

  const compact = () => {
    const { kept, summary } = compactReports(queue, Math.floor(maxBytes * 0.75), maxBytes)
    if (!summary) return
    rewrite(ackedSeq, kept)
    const fields = { ...summary.data, pendingBytes: bytes, path }
    if (summary.data.criticalDropped > 0)
      log.error("spool over its size cap: heal outcomes dropped (counted in a reports.compacted report)", fields)
    else log.warn("spool over its size cap: oldest progress reports compacted", fields)
  }
  if (bytes > maxBytes) compact()

  return {
    append(input) {
      if (fd === null) throw new Error("spool is closed")
      const report = AgentReport.parse({ ...input, seq: lastSeq + 1, at: new Date().toISOString() })
      writeSync(fd, `${JSON.stringify(report)}\n`)
      fsyncSync(fd)
      lastSeq = report.seq
      queue.push(report)
      bytes += reportBytes(report)
      // The report is durable already; a compaction that fails (a full disk) is tried at the next append.
      if (bytes > maxBytes)
        try {
          compact()
        } catch (error) {
          log.error("spool over its size cap and compaction failed", { path, error })
        }
      for (const listener of listeners) listener()
      return report
    },
    pending(limit = Number.POSITIVE_INFINITY) {
      return queue.slice(0, limit)
    },
    ack(seq) {
      // An answer below what we already hold (a control plane restored from an old backup) changes nothing.
      const upTo = Math.min(seq, lastSeq)
      if (upTo <= ackedSeq || fd === null) return
      rewrite(
        upTo,
        queue.filter((r) => r.seq > upTo),
      )
    },
    setAside(seq) {
      if (fd === null || queue[0]?.seq !== seq) throw new Error(`report ${seq} is not the oldest pending one`)
      rewrite(seq, queue.slice(1))
    },
    get bytes() {
      return bytes
    },
    get lastSeq() {
      return lastSeq
    },
    get ackedSeq() {
      return ackedSeq
    },
    onAppend(listener) {
      listeners.push(listener)
    },
    close() {
      if (fd !== null) closeSync(fd)
      fd = null
    },
  }
}

function _load(path: string): { lastSeq: number; ackedSeq: number; reports: AgentReport[] } {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { lastSeq: 0, ackedSeq: 0, reports: [] }
    throw err
  }
  let lastSeq = 0
  let ackedSeq = 0
  const reports: AgentReport[] = []
  const lines = text.split("\n").filter((l) => l.length > 0)
  lines.forEach((line, i) => {
    const value = _json(line)
    const header = Header.safeParse(value)
    if (header.success) {
      lastSeq = Math.max(lastSeq, header.data.lastSeq)
      ackedSeq = Math.max(ackedSeq, header.data.ackedSeq)
      return
    }
    const report = AgentReport.safeParse(value)
    // Keep the order of the file and never a sequence number twice, whatever a torn write left behind.
    if (report.success && report.data.seq > (reports.at(-1)?.seq ?? 0)) {
      reports.push(report.data)
      lastSeq = Math.max(lastSeq, report.data.seq)
      return
    }
    const torn = i === lines.length - 1
    log.warn(torn ? "ignoring a torn last line (crash during append)" : "ignoring an unreadable line", {
      path,
      line: i + 1,
    })
  })
  return { lastSeq, ackedSeq, reports }
}

function _json(line: string): unknown {
  try {
    return JSON.parse(line)
  } catch {
    return null
  }
}

function _rewrite(path: string, lastSeq: number, ackedSeq: number, reports: AgentReport[]): void {
  const lines = [JSON.stringify({ spool: 1, lastSeq, ackedSeq }), ...reports.map((r) => JSON.stringify(r))]
  writeFileDurably(path, `${lines.join("\n")}\n`)
}
