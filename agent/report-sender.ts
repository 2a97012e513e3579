// Sends the spool to the control plane: unacknowledged reports, oldest first, in batches of up to 500
// (POST /api/agent/:nodeId/reports). The answer's `ackedSeq` is what the control plane made durable;
// only that is dropped from the spool, so a control plane killed mid-request loses nothing and a
// replay is deduplicated there by (node, seq). Failures back off exponentially with full jitter
// (500 ms up to 15 s) so a fleet does not hammer a control plane that is coming back up; a 429's
// Retry-After (the node's report quota is spent) is waited out in full, the reports kept spooled.
// A 413 or 422 is the control plane refusing what was sent for good: the batch is halved until the
// report it refuses stands alone, and that one is set aside (quarantine.ts) so the rest flows.
import { createLogger } from "../protocol/log.ts"
import { createBackoff, sleep } from "./backoff.ts"
import { ControlError, type OrchestratorPort } from "./control-client.ts"
import { quarantineReport } from "./quarantine.ts"
import type { Spool } from "./spool.ts"

const log = createLogger("reports")

const BATCH = 500

export interface ReportSenderOptions {
  /** Where reports the control plane refused for good are kept (in the state dir). */
  quarantineDir: string
}

export interface ReportSender {
  /** Stops the loop, then tries once (within `timeoutMs`) to send what is still pending. */
  stop(timeoutMs?: number): Promise<void>
}

export function startReportSender(spool: Spool, client: OrchestratorPort, opts: ReportSenderOptions): ReportSender {
  /** Halved while the control plane refuses a batch for good, grown back after each success. */
  let batchSize = BATCH
  const backoff = createBackoff({ initialMs: 500, maxMs: 15_000, jitter: "full" })
  const ac = new AbortController()
  let wake: (() => void) | null = null
  let failing = false
  spool.onAppend(() => {
    wake?.()
    wake = null
  })

  const sendOnce = async (): Promise<boolean> => {
    const batch = spool.pending(batchSize)
    const last = batch.at(-1)
    if (!last) return true
    let ack: Awaited<ReturnType<OrchestratorPort["sendReports"]>>
    try {
      ack = await client.sendReports({ reports: batch })
    } catch (err) {
      if (!(err instanceof ControlError && (err.status === 413 || err.status === 422))) throw err
      if (batch.length > 1) {
        batchSize = Math.ceil(batch.length / 2)
        log.info("control plane refused a batch of reports; sending smaller ones", {
          status: err.status,
          from: batch[0]?.seq,
          to: last.seq,
          batchSize,
        })
        return false
      }
      quarantineReport({ spool, dir: opts.quarantineDir, report: last, status: err.status, answer: err.message })
      return spool.pending(1).length === 0
    }
    batchSize = Math.min(BATCH, batchSize * 2)
    const before = spool.ackedSeq
    spool.ack(ack.ackedSeq)
    if (spool.ackedSeq <= before)
      throw new ControlError(`control plane acknowledged seq ${ack.ackedSeq}; sent ${batch[0]?.seq}..${last.seq}`, 200)
    log.debug("reports sent", { from: batch[0]?.seq, to: last.seq, ackedSeq: spool.ackedSeq })
    return spool.pending(1).length === 0
  }

  const loop = async () => {
    while (!ac.signal.aborted) {
      if (spool.pending(1).length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        continue
      }
      try {
        await sendOnce()
        if (failing) log.info("control plane reachable again; reports resumed", { ackedSeq: spool.ackedSeq })
        failing = false
        backoff.reset()
      } catch (err) {
        // A control plane that says when to come back (a node past its report quota) is taken at its word.
        const asked = err instanceof ControlError ? (err.retryAfterMs ?? 0) : 0
        const delay = Math.max(backoff.next(), asked)
        _logFailure(err, failing, delay, spool.pending().length)
        failing = true
        await sleep(delay, ac.signal)
      }
    }
  }
  const running = loop()

  return {
    async stop(timeoutMs = 2000) {
      ac.abort()
      wake?.()
      await running
      if (spool.pending(1).length === 0) return
      const flushed = await Promise.race([sendOnce().catch(() => false), Bun.sleep(timeoutMs).then(() => false)])
      if (!flushed) log.info("reports left in the spool for the next start", { pending: spool.pending().length })
    },
  }
}

function _logFailure(err: unknown, alreadyFailing: boolean, retryInMs: number, pending: number): void {
  if (err instanceof ControlError && err.refused) {
    log.error("control plane refused this agent's credential (revoked?); reports stay spooled", {
      error: err.message,
      retryInMs,
      pending,
    })
    return
  }
  const fields = { error: err instanceof Error ? err.message : String(err), retryInMs, pending }
  if (err instanceof ControlError && err.status === 429) {
    log.info("control plane asks this node to send reports more slowly; they stay spooled", fields)
    return
  }
  if (alreadyFailing) log.debug("sending reports failed", fields)
  else log.warn("sending reports failed; spooling until the control plane is back", fields)
}
