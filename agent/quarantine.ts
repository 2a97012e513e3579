// Reports the control plane refused for good (413 too large, 422 invalid: an agent newer than its
// control plane, a proxy with a smaller body limit). Retrying one would hold every report behind it in
// the spool for ever, so it is set aside: written, with the control plane's answer, to
// <state dir>/quarantine/report-SEQ.json (0600: a heal's output may hold anything), dropped from the
// spool, logged as an error, and announced by a `report.quarantined` report that the operator sees as
// an event once it is delivered. A refused announcement is set aside without another, so a control
// plane that refuses everything cannot start a loop. At most QUARANTINE_MAX files are kept, the
// oldest removed first, so the directory cannot fill the disk either.
import { mkdirSync, readdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import type { AgentReport } from "../protocol/agent.ts"
import { createLogger } from "../protocol/log.ts"
import { writeFileDurably } from "./durable-file.ts"
import type { Spool } from "./spool.ts"

const log = createLogger("reports")

export const QUARANTINE_MAX = 200

export interface QuarantineInput {
  spool: Spool
  dir: string
  /** The oldest pending report, refused on its own. */
  report: AgentReport
  status: number
  answer: string
}

/** Sets `report` aside; returns the file it was written to (null if it could not be written). */
export function quarantineReport(input: QuarantineInput): string | null {
  const { report, status } = input
  const answer = input.answer.slice(0, 4096)
  const file = join(input.dir, `report-${report.seq}.json`)
  let written: string | null = file
  try {
    mkdirSync(input.dir, { recursive: true, mode: 0o700 })
    writeFileDurably(file, `${JSON.stringify({ report, status, answer, at: new Date().toISOString() }, null, 2)}\n`)
    _prune(input.dir)
  } catch (error) {
    // Not being able to keep it must not block the spool either; the log line is then all there is.
    log.error("could not write a refused report to the quarantine", { seq: report.seq, file, error })
    written = null
  }
  input.spool.setAside(report.seq)
  log.error("control plane refused a report for good; set aside, the rest goes on", {
    seq: report.seq,
    type: report.type,
    status,
    answer,
    file: written,
  })
  if (report.type !== "report.quarantined")
    input.spool.append({
      type: "report.quarantined",
      data: { quarantinedSeq: report.seq, quarantinedType: report.type, status, answer, file: written ?? "" },
    })
  return written
}

function _prune(dir: string): void {
  const files = readdirSync(dir)
    .flatMap((f) => {
      const m = /^report-(\d+)\.json$/.exec(f)
      return m ? [{ f, seq: Number(m[1]) }] : []
    })
    .sort((a, b) => a.seq - b.seq)
  for (const { f } of files.slice(0, Math.max(0, files.length - QUARANTINE_MAX))) {
    rmSync(join(dir, f), { force: true })
    log.warn("quarantine full: oldest refused report removed", { file: join(dir, f), keep: QUARANTINE_MAX })
  }
}
