// Ctrl-C while `chimera nodes run` waits for its answers stops the command on the nodes, as closing an
// ssh or pssh session does: the run is cancelled on the control plane (POST /api/fleet/run/:id/cancel),
// which tells the agents running it to stop it (SIGTERM, then SIGKILL) and never delivers it where it
// has not been fetched yet. What was cancelled is said, then the command exits 130. A second Ctrl-C
// leaves at once; the connection it closes still cancels the run (a run whose caller went away is
// cancelled by the control plane itself).
import type { hc } from "hono/client"
import type { AppType } from "../api/app.ts"
import type { CancelledRun } from "../domain/relay-cancel.ts"
import { refusal } from "./client.ts"
import { finishOnInterrupt } from "./interrupt.ts"

/** How long Ctrl-C waits for the control plane to take the cancel. */
const CANCEL_WAIT_SECONDS = 10
/** A run is queued a moment after its request arrives: a cancel sooner finds nothing, and is asked again. */
const NOT_QUEUED_RETRIES = 10
const RETRY_MS = 100

const nodesText = (nodes: string[]) =>
  nodes.length > 5 ? `${nodes.slice(0, 5).join(", ")} and ${nodes.length - 5} more` : nodes.join(", ")

/** What the cancel's answer means, in a line. */
export function cancelledText(a: CancelledRun): string {
  const parts = [
    a.stopping.length > 0 && `stopping on ${nodesText(a.stopping)}`,
    a.not_started.length > 0 && `not started on ${nodesText(a.not_started)}`,
    a.ended.length > 0 && `already ended on ${nodesText(a.ended)}`,
  ].filter(Boolean)
  return `cancelled run ${a.run_id}: ${parts.join("; ")}`
}

async function cancel(url: string, client: ReturnType<typeof hc<AppType>>, runId: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const res = await client.api.fleet.run[":runId"].cancel.$post({ param: { runId } })
    if (res.status === 202) return cancelledText((await res.json()) as CancelledRun)
    if (res.status === 409) return `run ${runId} had already ended on every node: nothing was cancelled`
    if (res.status !== 404 || attempt >= NOT_QUEUED_RETRIES) throw await refusal(url, res)
    await Bun.sleep(RETRY_MS)
  }
}

/** Until `release`, the first Ctrl-C cancels run `runId` and says what it cancelled (exit 130). */
export function cancelOnInterrupt(url: string, client: ReturnType<typeof hc<AppType>>, runId: string) {
  let said = `run ${runId}: the control plane did not answer the cancel in time; the closed connection cancels it there`
  let cancelling: Promise<void> | null = null
  return finishOnInterrupt({
    waitingFor() {
      cancelling ??= cancel(url, client, runId).then(
        (text) => {
          said = text
        },
        (error: unknown) => {
          said = `cancelling run ${runId} failed: ${(error as Error).message}; the closed connection cancels it there`
        },
      )
      return `cancelling run ${runId} on the nodes`
    },
    done: () => cancelling ?? Promise.resolve(),
    seconds: CANCEL_WAIT_SECONDS,
    message: () => said,
  })
}
