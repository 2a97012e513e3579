// `chimera deploy --via-control-plane`: the control plane runs the deploy with its own SSH key and
// [fleet.nodes], and the CLI follows it until it ends (GET /api/deployments/:id). The configuration
// is built on the control plane's host, so CONFIG is a path there (admins only; an operator deploys a
// closure already built, given as /nix/store/… or a link to one such as ./result, which is read here).
//
// Progress is printed from the deployment's `deployment.progress` events, a line per target and step,
// each once and in order. The deployment's own view holds only each target's latest step, so printing
// it when polled skipped steps that came and went between two polls. The events are read from the
// event stream, opened after the newest event id as it was before the deploy started; when the stream
// drops or is refused, the events list is read from the last id seen, and the stream opened again.
import { resolve } from "node:path"
import { z } from "zod"
import { StorePath } from "../../protocol/ids.ts"
import { builtClosure } from "../adapters/nix.ts"
import type { DeploymentRecord } from "../domain/deployment-record.ts"
import type { EventType } from "../domain/events.ts"
import type { UnfinishedDeployment } from "../ops/fleet-operations.ts"
// The follow waits through a database outage as long as the deploy's record's save does.
import { STORE_WAIT_MS } from "../ops/until-stored.ts"
import { apiClient, call, controlToken } from "./client.ts"
import { CliError } from "./errors.ts"
import { exitOnInterrupt, spinner } from "./interrupt.ts"
import { field, warn } from "./output.ts"
import { readSse } from "./sse-reader.ts"

export interface RemoteDeploy {
  targets: string
  config: string
  command: string | null
  session: string
  confirmTimeout: number
  activationTimeout: number
  healthTimeout: number
  healthCmd: string[]
  healthUrl: string[]
  dryRun: boolean
  force: boolean
  json: boolean
}

/**
 * The closure CONFIG names: a store path (which may exist only on the control plane's host), or a
 * local link to a built one; null for a Nix file.
 */
function _closureOf(config: string): StorePath | null {
  if (config.startsWith("/nix/store/")) return StorePath.safeParse(config).data ?? null
  return builtClosure(resolve(config))
}

export async function deployViaControlPlane(d: RemoteDeploy): Promise<DeploymentRecord> {
  const { url, client } = apiClient()
  const targets = d.targets
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "")
  if (targets.length === 0)
    throw new CliError("--targets: name the nodes ([fleet.nodes] names or @tag on the control plane)", "E_ARG")
  const closure = _closureOf(d.config)
  // Read before the deploy starts, so its first event comes after this id.
  const { lastEventId: after } = (await call(url, client.api.events["last-id"].$get())) as { lastEventId: number }
  const started = await call(
    url,
    client.api.deployments.$post({
      json: {
        targets,
        ...(closure ? { closure } : { config_path: d.config }),
        command: d.command,
        session: d.session,
        health_cmd: d.healthCmd,
        health_url: d.healthUrl,
        health_timeout_seconds: d.healthTimeout,
        confirm_timeout_seconds: d.confirmTimeout,
        activation_timeout_seconds: d.activationTimeout,
        dry_run: d.dryRun,
        force: d.force,
      } as never,
    }),
  )
  const id = (started as { id: string }).id
  const spin = d.json ? null : spinner()
  spin?.start(`deploy ${id} on ${url}`)
  const release = exitOnInterrupt(
    () => `stopped following; deploy ${id} goes on on the control plane: chimera deployments show ${id}`,
  )
  const print = (line: string) => {
    if (spin) spin.message(line)
    else if (!d.json) warn(`${line}\n`)
  }
  const follower = followProgress(url, id, after, print)
  try {
    for (;;) {
      const view = (await _throughStoreOutage(
        () => call(url, client.api.deployments[":id"].$get({ param: { id } })),
        id,
        print,
      )) as DeploymentRecord | UnfinishedDeployment
      if (view.status !== "running") {
        // Ended: the control plane stores a deploy's end event before it stops answering `running`, so
        // every event it made is in the list now; those the stream had not carried yet are read there.
        await follower.end()
        if (view.status === "interrupted") {
          spin?.stop(`deploy ${id}: interrupted`)
          throw new CliError(`deploy ${id} was interrupted: ${view.reason}`, "E_INTERRUPTED")
        }
        spin?.stop(`deploy ${id}: ${view.status}`)
        return view
      }
      await follower.settle()
    }
  } finally {
    release()
    await follower.stop()
  }
}

/**
 * A look at the deploy, waited through a time the control plane cannot reach its database (a
 * PostgreSQL restart or failover): the deploy goes on there, and its record is saved once the database
 * answers, so the follow waits as long as that save would (STORE_WAIT_MS) instead of ending at once.
 */
async function _throughStoreOutage<T>(look: () => Promise<T>, id: string, say: (line: string) => void): Promise<T> {
  let since: number | null = null
  for (;;) {
    try {
      const view = await look()
      if (since !== null) say(`the control plane reaches its database again; following deploy ${id}`)
      return view
    } catch (error) {
      if (!(error instanceof CliError) || error.apiCode !== "STORE_UNAVAILABLE") throw _lostWhileFollowing(error, id)
      if (since === null) {
        since = Date.now()
        say(`the control plane cannot reach its database; deploy ${id} goes on there, waiting for it`)
      } else if (Date.now() - since >= STORE_WAIT_MS)
        throw new CliError(
          `${error.message} Deploy ${id} may still be running: chimera deployments show ${id} once the database answers.`,
          error.code,
          error.apiCode,
        )
      await Bun.sleep(POLL_MS)
    }
  }
}

/**
 * The control plane stopped answering while the deploy ran (a replica killed, its host gone): the
 * deploy id is all the operator has to find out how it ended, through any other replica.
 */
function _lostWhileFollowing(error: unknown, id: string): unknown {
  if (!(error instanceof CliError) || error.code !== "E_UNREACHABLE") return error
  return new CliError(
    `${error.message} It was running deploy ${id}: ask another replica of the control plane how it ended (CHIMERA_URL=<another replica's URL> chimera deployments show ${id}).`,
    error.code,
  )
}

/** The events a deployment's progress is read from, as the stream and the list carry them. */
const FOLLOWED_TYPES: EventType[] = ["deployment.progress", "deployment.finished"]
/** Events of the list read at once; a full page means there may be more. */
const LIST_PAGE = 1000
/** How often the deployment is asked whether it still runs (its end event cuts the wait short). */
const POLL_MS = 1000
/** The wait before the stream is opened again after it dropped or was refused; it doubles up to the max. */
const STREAM_RETRY_MS = 2000
const STREAM_RETRY_MAX_MS = 30_000

const FollowedEvent = z.object({
  id: z.number().int().nonnegative(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
})
const Progress = z.object({ id: z.string(), target: z.string(), phase: z.string(), message: z.string() })

/** Resolves after `ms`, or at once when `signal` aborts. */
const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    signal.addEventListener("abort", done, { once: true })
  })

/**
 * Prints deployment `id`'s progress events that come after event `after`, each once (events are told
 * apart by id: the stream and the list may both carry one). In the background until `end` (which
 * also reads what the list holds and the stream had not carried yet) or `stop`.
 */
function followProgress(url: string, id: string, after: number, print: (line: string) => void) {
  const { client } = apiClient()
  const printed = new Set<number>()
  let cursor = after
  let finished = false
  const sawFinish = Promise.withResolvers<void>()
  const stopping = new AbortController()

  const take = (raw: unknown) => {
    const event = FollowedEvent.safeParse(raw)
    if (!event.success) return
    const e = event.data
    cursor = Math.max(cursor, e.id)
    if (e.data.id !== id) return
    if (e.type === "deployment.finished") {
      finished = true
      sawFinish.resolve()
      return
    }
    const step = Progress.safeParse(e.data)
    if (e.type !== "deployment.progress" || !step.success || printed.has(e.id)) return
    printed.add(e.id)
    print(field(`${step.data.target}: ${step.data.phase}: ${step.data.message}`))
  }

  /** The events list after the cursor, to its end. */
  const readList = async () => {
    for (;;) {
      const { events } = (await call(
        url,
        client.api.events.$get({ query: { type: FOLLOWED_TYPES, after: cursor, limit: String(LIST_PAGE) } }),
      )) as { events: unknown[] }
      for (const e of events) take(e)
      if (events.length < LIST_PAGE) return
    }
  }

  /** Reads the stream until it ends or drops; true if it opened. */
  const readStream = async (): Promise<boolean> => {
    const params = new URLSearchParams({ type: FOLLOWED_TYPES.join(","), after: String(cursor) })
    const res = await fetch(`${url}/api/events/stream?${params}`, {
      headers: { authorization: `Bearer ${controlToken()}`, accept: "text/event-stream" },
      signal: stopping.signal,
    })
    if (!res.ok || !res.body) {
      await res.body?.cancel()
      return false
    }
    // `ready` opens the stream; an `error` frame ends it (the credential no longer holds): the list,
    // read next, says why in its own error if it is so.
    for await (const record of readSse(res.body)) {
      if (record.event === "error") break
      if (record.event !== "ready") take(JSON.parse(record.data))
    }
    return true
  }

  const following = (async () => {
    let retryMs = STREAM_RETRY_MS
    let streamAt = 0
    while (!stopping.signal.aborted) {
      if (Date.now() >= streamAt) {
        const opened = await readStream().catch(() => false)
        if (stopping.signal.aborted) return
        if (opened) retryMs = STREAM_RETRY_MS
        streamAt = Date.now() + retryMs
        retryMs = Math.min(retryMs * 2, STREAM_RETRY_MAX_MS)
      }
      // Without the stream, the list is read every poll; a failure here (the control plane away, a
      // revoked credential) is said by the poll of the deployment itself.
      await readList().catch(() => {})
      await pause(POLL_MS, stopping.signal)
    }
  })()

  const stop = async () => {
    stopping.abort()
    await following
  }

  return {
    /** Waits until the deployment should be asked again: a while, or less once its end was seen. */
    settle: () => (finished ? Bun.sleep(250) : Promise.race([Bun.sleep(POLL_MS), sawFinish.promise])),
    /**
     * For a deployment that ended: stops following and prints what the events list still holds. The
     * deploy is over either way, so a list that cannot be read is said, not thrown: the record and the
     * exit code still come.
     */
    async end() {
      await stop()
      await readList().catch((error: Error) =>
        print(field(`the progress events after event ${cursor} could not be read: ${error.message}`)),
      )
    },
    stop,
  }
}
