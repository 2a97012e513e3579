// Commands from the control plane: a long poll (GET /api/agent/:nodeId/commands?wait=25) held open so a
// deploy or a relayed command reaches the node at once without the agent asking every second.
//
// An `activate` command makes its closure the desired system (persisted, so it is enforced across
// restarts) and is acknowledged once the heal it triggers has finished, with that heal's outcome;
// activations run one after another. A `run` command runs a shell command (run-command.ts) and is
// acknowledged with its exit code, stdout and stderr; up to RUN_CONCURRENCY run at once, beside any
// activation, so a long heal never holds a relayed command back, nor the other way round. The poll
// goes on while commands run. An `activate` redelivered while it still runs (the control plane
// delivers it again when it stays unacknowledged for a minute) is not started twice; a `run` is
// delivered at most once by the control plane itself, so not even an agent restart repeats it. That is
// why stopping the agent (SIGTERM) kills the running `run` commands and acknowledges each as failed,
// "agent stopped", before the process exits, and refuses the queued ones the same way: left
// unacknowledged they would only surface as a timeout, with no reason given.
//
// The poll's answer may also name `run` commands whose caller cancelled them (protocol/agent.ts,
// CommandList): a running one is stopped (run-command.ts: SIGTERM, then SIGKILL) and acknowledged
// with what it wrote so far; a queued one is acknowledged as never started; any other is already
// done (its ack on its way) or unknown, and ignored.
import type { CommandAck, RunCommand } from "../protocol/agent.ts"
import { createLogger } from "../protocol/log.ts"
import { createBackoff, sleep, spreadPeriod } from "./backoff.ts"
import { ControlError, type OrchestratorPort } from "./control-client.ts"
import type { Reconciler } from "./reconciler.ts"
import { runShell } from "./run-command.ts"

const log = createLogger("commands")

/** A long poll waits 25 s, give or take 5: polls brought together by a restart drift apart again. */
const WAIT_SECONDS = 25
/** How long an acknowledgement is retried: a control plane restarting must not cost a command's result. */
const ACK_PATIENCE_MS = 10 * 60_000
// A control plane that answers a long poll at once must not turn this loop into a busy one.
const MIN_CYCLE_MS = 1000
/** `run` commands executing at once; more wait in a queue, their timeout counting from receipt. */
export const RUN_CONCURRENCY = 4
/** Beyond this many waiting, a `run` command is refused (acked as failed) rather than queued. */
const RUN_QUEUE_LIMIT = 256
const MAX_OUTPUT = 65_536
/** At stop, how long the failure acks of killed and queued `run` commands may take before the agent exits. */
const STOP_ACK_MS = 5000
export const AGENT_STOPPED = "[chimera: agent stopped; the command was killed]"

export interface CommandLoop {
  /** Stops polling, kills running `run` commands and acks them (and queued ones) as failed, within bounds. */
  stop(): Promise<void>
}

export function startCommandLoop(client: OrchestratorPort, reconciler: Reconciler): CommandLoop {
  const ac = new AbortController()
  const backoff = createBackoff({ initialMs: 500, maxMs: 15_000, jitter: "full" })
  /** Ids received and not yet acknowledged: a redelivery of one of them is ignored. */
  const inFlight = new Set<string>()
  let activations: Promise<void> = Promise.resolve()
  const queue: { command: RunCommand; receivedAt: number }[] = []
  let running = 0
  /** The `run` commands executing now, each until its ack is done. */
  const runs = new Set<Promise<void>>()
  /** Each executing `run`'s cancel, by its id. */
  const cancels = new Map<string, AbortController>()
  /** Set at stop: the last acks, bounded by STOP_ACK_MS instead of the loop's signal. */
  let stopDeadline: AbortSignal | null = null

  const ack = async (id: string, body: CommandAck) => {
    const retry = createBackoff({ initialMs: 500, maxMs: 30_000, jitter: "full" })
    const bounded = { ...body, output: body.output.slice(0, MAX_OUTPUT), stderr: body.stderr?.slice(0, MAX_OUTPUT) }
    // A `run` is never delivered twice, so a result given up on is a result lost: the operator sees a
    // timeout and runs it again. Retried until the control plane says it no longer waits (4xx), or for
    // ACK_PATIENCE_MS; a 401 too, which a credential rotated between two attempts can cause once. While
    // the agent stops, only until the stop's deadline.
    const until = performance.now() + ACK_PATIENCE_MS
    const signal = () => stopDeadline ?? ac.signal
    for (let refusedOnce = false; performance.now() < until && !signal().aborted; ) {
      try {
        await client.ackCommand(id, bounded)
        return
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err)
        // 409: the control plane no longer waits for it (expired, superseded); retrying cannot help.
        const status = err instanceof ControlError ? err.status : null
        const retryable = status === null || status >= 500 || status === 429 || (status === 401 && !refusedOnce)
        if (status === 401) refusedOnce = true
        if (!retryable) {
          log.warn("command ack refused", { id, error })
          return
        }
        log.warn("command ack failed", { id, error })
        await sleep(retry.next(), signal())
      }
    }
  }

  const settle = (id: string, work: () => Promise<void>) =>
    work()
      .catch((err) => log.error("command failed", { id, error: err instanceof Error ? err.message : String(err) }))
      .finally(() => inFlight.delete(id))

  const runNext = () => {
    while (running < RUN_CONCURRENCY && queue.length > 0 && !ac.signal.aborted) {
      const { command, receivedAt } = queue.shift() as (typeof queue)[number]
      running++
      const run = settle(command.id, async () => {
        const left = command.timeoutSeconds * 1000 - (performance.now() - receivedAt)
        if (left <= 0) {
          await ack(command.id, {
            success: false,
            output: "",
            exitCode: null,
            stderr: `[chimera: not started: its ${command.timeoutSeconds} s timeout passed in the agent's queue]`,
            timedOut: true,
          })
          return
        }
        log.info("run", { id: command.id, timeoutSeconds: command.timeoutSeconds })
        const cancel = new AbortController()
        cancels.set(command.id, cancel)
        const r = await runShell(command.command, {
          timeoutMs: left,
          signal: ac.signal,
          cancel: cancel.signal,
        }).finally(() => cancels.delete(command.id))
        log.info("ran", {
          id: command.id,
          exitCode: r.exitCode,
          timedOut: r.timedOut,
          cancelled: r.cancelled,
          ms: r.durationMs,
        })
        if (ac.signal.aborted) {
          log.warn("command killed: the agent is stopping", { id: command.id })
          await ack(command.id, {
            success: false,
            output: r.stdout,
            exitCode: null,
            stderr: `${r.stderr}${r.stderr && !r.stderr.endsWith("\n") ? "\n" : ""}${AGENT_STOPPED}`,
          })
          return
        }
        await ack(command.id, {
          success: r.exitCode === 0,
          output: r.stdout,
          exitCode: r.exitCode,
          stderr: r.stderr,
          timedOut: r.timedOut,
        })
      }).finally(() => {
        runs.delete(run)
        running--
        runNext()
        // The last one done: collect what the outputs left behind now. Left to itself the collector lets
        // a busy agent sit at ~70 MB RSS for a while; collected, it stays near 60 MB under a steady
        // stream of chatty commands and is back near its idle size at once (measured: 8 concurrent
        // commands of 270 KB output, 30 rounds). A full collection of this small heap takes milliseconds.
        if (running === 0) Bun.gc(true)
      })
      runs.add(run)
    }
  }

  /** A cancel from the control plane: the `run` stops if it runs, and never starts if it waits. */
  const stopRun = (id: string) => {
    const running = cancels.get(id)
    if (running) {
      if (!running.signal.aborted) log.info("cancelling", { id })
      running.abort()
      return
    }
    const at = queue.findIndex((q) => q.command.id === id)
    if (at < 0) return
    queue.splice(at, 1)
    log.info("cancelled before it started", { id })
    void settle(id, () =>
      ack(id, {
        success: false,
        output: "",
        exitCode: null,
        stderr: "[chimera: cancelled while it waited in the agent's queue; not started]",
      }),
    )
  }

  const poll = async () => {
    const t0 = performance.now()
    const { commands, unsupported, cancel } = await client.fetchCommands(
      spreadPeriod(WAIT_SECONDS * 1000) / 1000,
      ac.signal,
    )
    backoff.reset()
    for (const u of unsupported) {
      if (inFlight.has(u.id)) continue
      inFlight.add(u.id)
      log.warn("unsupported command", u)
      void settle(u.id, () =>
        ack(u.id, { success: false, output: `this agent does not support command kind ${u.kind}` }),
      )
    }
    for (const command of commands) {
      if (inFlight.has(command.id)) continue
      inFlight.add(command.id)
      if (command.kind === "activate") {
        log.info("command", { id: command.id, kind: command.kind, closure: command.closure })
        activations = activations.then(() =>
          settle(command.id, async () => {
            const result = await reconciler.activate(command.closure)
            if (ac.signal.aborted) return
            await ack(command.id, { success: result.success, output: result.output })
          }),
        )
      } else if (queue.length >= RUN_QUEUE_LIMIT) {
        void settle(command.id, () =>
          ack(command.id, {
            success: false,
            output: "",
            exitCode: null,
            stderr: `[chimera: not started: ${RUN_QUEUE_LIMIT} commands already wait on this agent]`,
          }),
        )
      } else {
        queue.push({ command, receivedAt: performance.now() })
        runNext()
      }
    }
    for (const id of cancel) stopRun(id)
    const elapsed = performance.now() - t0
    if (commands.length + unsupported.length === 0 && elapsed < MIN_CYCLE_MS)
      await sleep(MIN_CYCLE_MS - elapsed, ac.signal)
  }

  void (async () => {
    while (!ac.signal.aborted) {
      try {
        await poll()
      } catch (err) {
        if (ac.signal.aborted) return
        const delay = backoff.next()
        const error = err instanceof Error ? err.message : String(err)
        if (err instanceof ControlError && err.refused)
          log.error("command poll refused (credential revoked?)", { error })
        else log.debug("command poll failed", { error, retryInMs: delay })
        await sleep(delay, ac.signal)
      }
    }
  })()

  return {
    async stop() {
      stopDeadline = AbortSignal.timeout(STOP_ACK_MS)
      // Running shells are killed with their process groups (runShell listens to the same signal) and
      // acknowledged as failed by their own settle; the queued ones never started and are refused here.
      ac.abort()
      const refused = queue.splice(0).map(({ command }) =>
        settle(command.id, () =>
          ack(command.id, {
            success: false,
            output: "",
            exitCode: null,
            stderr: "[chimera: agent stopped; the command was not started]",
          }),
        ),
      )
      const waited = new AbortController()
      const done = Promise.all([...runs, ...refused]).then(() => true)
      const deadline = sleep(STOP_ACK_MS + 500, waited.signal).then(() => false)
      const acked = await Promise.race([done, deadline])
      waited.abort()
      if (!acked) log.warn("stopping without acknowledging every killed command", { running })
    },
  }
}
