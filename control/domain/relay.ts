// Commands relayed through the node agents, which run them on their own nodes and ack each result back:
// no SSH, no inventory of addresses, only enrolled nodes and the long poll each agent holds.
// `relay` queues one `run` command per node in one transaction, wakes those nodes' long polls, and
// waits, event-driven, for every acknowledgement (the ack path calls back into this process through
// fleet.onAck) or the timeout, then answers per node. Nodes the heartbeats say are gone (unreachable,
// or never heard from) answer `offline` at once, and so do revoked nodes: no agent may take a command
// for them (the store refuses their old credential anyway), so none is queued. A command nobody
// answered by the deadline is closed in the store, so an agent that comes back later is never handed
// a command its caller gave up on.
//
// Several replicas (PostgreSQL): an ack may land on another replica, which tells the others
// (replica-link.ts); a relay here then reads the results of its own unanswered commands at once
// (`answeredElsewhere`), and also every `pollFallbackMs` in case a notification was lost (one query
// per relay, not per node). Queueing wakes the long polls other replicas hold the same way.
//
// A relay is a run with an id (`runId`): its caller may cancel it through any replica (relay-cancel.ts).
// The relay goes on waiting as before, and a node it reached answers `cancelled` once its agent has
// killed the command, or as its command ended on its own (an agent that predates the cancel runs it
// to its end or its timeout).
import { randomUUID } from "node:crypto"
import type { CommandAck, RunCommand } from "../../protocol/agent.ts"
import { createLogger, redactText } from "../../protocol/log.ts"
import type { Role } from "./auth/roles.ts"
import { type CommandResults, commandResults, type NodeCommandResult, seconds } from "./command-results.ts"
import { ChimeraError, conflict } from "./errors.ts"
import type { Fleet } from "./fleet.ts"
import type { NodeRecord } from "./node.ts"
import type { Clock, CommandResultRecord, StorePort } from "./ports.ts"
import { cancelRun } from "./relay-cancel.ts"

const log = createLogger("relay")

/** How long after a command's timeout its ack may still come (the agent's kill, the round trip). */
const GRACE_MS = 2000
/**
 * All the output one relay holds and answers with, stdout and stderr together, in characters; each
 * node's stream gets its share (64 Ki characters at most), so a relay to 5,000 chatty nodes answers
 * with 32 Mi characters, not 640.
 */
const OUTPUT_BUDGET = 32 * 1024 * 1024
const MAX_STREAM_OUTPUT = 65_536

export interface RelayInput {
  /** The run's id (a UUID), unused by any other run: its commands carry it, and a cancel names it. */
  runId: string
  /** Enrolled node ids, or every enrolled node. */
  nodes: string[] | "all"
  command: string
  timeoutSeconds: number
  /** Aborted when the caller goes away: the run is cancelled (once its commands are queued). */
  signal?: AbortSignal
}

export interface RelayDeps {
  fleet: Fleet
  store: StorePort
  clock: Clock
  /** Read acks from the store this often as well (several replicas); null: in-process only. */
  pollFallbackMs?: number | null
}

type Answer = { ack: CommandAck; cancelled: boolean; ms: number }

function truncate(text: string, max: number): string {
  if (text.length <= max) return text
  const note = `\n[chimera: ${text.length - max} more characters dropped from this relay's answer]`
  return text.slice(0, Math.max(0, max - note.length)) + note
}

/** Why a node was not sent the command. */
function offlineReason(n: NodeRecord): string {
  if (n.revoked) return "node credential revoked; not relayed (the node takes commands again once re-enrolled)"
  if (n.lastHeartbeat) return `node is unreachable (last heartbeat ${n.lastHeartbeat})`
  return "node has never sent a heartbeat"
}

export function createRelay({ fleet, store, clock, pollFallbackMs = null }: RelayDeps) {
  const waiting = new Map<string, (answer: CommandAck, cancelled: boolean) => void>()
  /** Each open relay's store read, by its commands' ids. */
  const readers = new Map<string, () => void>()
  fleet.onAck((_node, commandId, ack, cancelled) => waiting.get(commandId)?.(ack, cancelled))

  const resolveNodes = async (wanted: RelayInput["nodes"]): Promise<NodeRecord[]> => {
    const all = await fleet.listNodes()
    if (wanted === "all") return all
    const byId = new Map(all.map((n) => [n.id, n]))
    const ids = [...new Set(wanted)]
    const unknown = ids.filter((id) => !byId.has(id))
    if (unknown.length > 0)
      throw new ChimeraError(
        "NOT_FOUND",
        `${unknown.length === 1 ? "node" : "nodes"} not enrolled: ${unknown.slice(0, 20).join(", ")}${unknown.length > 20 ? `, and ${unknown.length - 20} more` : ""}`,
        { unknown },
      )
    return ids.map((id) => byId.get(id) as NodeRecord)
  }

  /**
   * These commands' ends were stored without this process's ack path (another replica took their
   * answers, a node's removal or a cancel closed them): the relays waiting for them read the store now.
   */
  const answeredElsewhere = (ids: string[]) => {
    const reads = new Set(ids.map((id) => readers.get(id)).filter((read) => read !== undefined))
    for (const read of reads) void read()
  }

  return {
    answeredElsewhere,

    /** Cancels run `runId` for a caller of `role` (relay-cancel.ts), whichever replica relays it. */
    cancel: (runId: string, role: Role) => cancelRun({ fleet, store, answeredElsewhere }, runId, role),

    async relay(input: RelayInput): Promise<CommandResults> {
      const t0 = performance.now()
      const nodes = await resolveNodes(input.nodes)
      if ((await store.runCommands(input.runId)).length > 0)
        throw conflict(`run ${input.runId} already exists; give each run its own id (a new UUID)`)
      const share = Math.min(MAX_STREAM_OUTPUT, Math.floor(OUTPUT_BUDGET / (2 * Math.max(1, nodes.length))))
      const online = nodes.filter((n) => !n.revoked && !n.unreachable && n.lastHeartbeat !== null)
      const createdAt = clock.now().toISOString()
      const queued = online.map((n) => {
        const command: RunCommand = {
          id: randomUUID(),
          kind: "run",
          command: input.command,
          timeoutSeconds: input.timeoutSeconds,
          createdAt,
        }
        return { nodeId: n.id, command, runId: input.runId }
      })
      const answers = new Map<string, Answer>()
      let allAnswered = () => {}
      const done = new Promise<void>((resolve) => {
        allAnswered = resolve
      })
      const take = (id: string, ack: CommandAck, cancelled: boolean) => {
        if (answers.has(id)) return
        // Only this relay's share of each output is held, whatever the agent sent.
        const bounded = { ...ack, output: truncate(ack.output, share), stderr: truncate(ack.stderr ?? "", share) }
        answers.set(id, { ack: bounded, cancelled, ms: performance.now() - t0 })
        if (answers.size === queued.length) allAnswered()
      }
      // A stored ack without a run result (stderr NULL) is an old agent's: the same shape as on the wire.
      const fromStore = (r: CommandResultRecord) =>
        take(
          r.id,
          r.stderr === null
            ? { success: r.success, output: r.output }
            : { success: r.success, output: r.output, exitCode: r.exitCode, stderr: r.stderr, timedOut: r.timedOut },
          r.cancelled,
        )
      // Listen before queueing: an agent holding its long poll can answer within a millisecond.
      for (const q of queued) waiting.set(q.command.id, (ack, cancelled) => take(q.command.id, ack, cancelled))
      let timer: ReturnType<typeof setTimeout> | undefined
      let poller: ReturnType<typeof setInterval> | undefined
      const callerLeft = () => {
        log.info("the caller went away: cancelling its run", { runId: input.runId })
        cancelRun({ fleet, store, answeredElsewhere }, input.runId, null).catch((error: unknown) => {
          // Every node answered meanwhile (409): nothing left to stop.
          if (!(error instanceof ChimeraError && error.code === "CONFLICT"))
            log.warn("cancelling a run whose caller went away failed", { runId: input.runId, error })
        })
      }
      try {
        if (queued.length > 0) {
          await fleet.enqueueCommands(queued)
          // Only now: a cancel before the commands are queued would find none, and they would run.
          if (input.signal?.aborted) callerLeft()
          else input.signal?.addEventListener("abort", callerLeft, { once: true })
          timer = setTimeout(allAnswered, input.timeoutSeconds * 1000 + GRACE_MS)
          let busy = false
          let again = false
          const read = async () => {
            if (busy) {
              again = true
              return
            }
            busy = true
            try {
              do {
                again = false
                const open = queued.map((q) => q.command.id).filter((id) => !answers.has(id))
                for (const r of await store.commandResults(open)) fromStore(r)
              } while (again)
            } catch (error) {
              log.warn("reading relayed results failed", { error })
            } finally {
              busy = false
            }
          }
          for (const q of queued) readers.set(q.command.id, read)
          if (pollFallbackMs) poller = setInterval(read, pollFallbackMs)
          await done
        }
      } finally {
        input.signal?.removeEventListener("abort", callerLeft)
        clearTimeout(timer)
        clearInterval(poller)
        for (const q of queued) {
          waiting.delete(q.command.id)
          readers.delete(q.command.id)
        }
      }

      const open = queued.map((q) => q.command.id).filter((id) => !answers.has(id))
      if (open.length > 0) {
        const closed = new Set(
          await store.expireCommands(
            open,
            clock.now().toISOString(),
            `no answer within the ${input.timeoutSeconds} s timeout`,
          ),
        )
        // Those not closed were answered between the deadline and now.
        const late = open.filter((id) => !closed.has(id))
        if (late.length > 0) for (const r of await store.commandResults(late)) fromStore(r)
      }
      // Every command is acked or closed now, never to be delivered again: the store keeps what ran,
      // redacted like every other record of a command (a `PGPASSWORD=…` stays out of the database).
      const redacted = redactText(input.command)
      const sample = queued[0]?.command
      if (sample && redacted !== input.command) {
        const { id: _, ...kept } = sample
        await store
          .scrubCommands(
            queued.map((q) => q.command.id),
            JSON.stringify({ ...kept, command: redacted }),
          )
          .catch((error) => log.warn("redacting relayed commands failed", { error }))
      }

      const commandOf = new Map(queued.map((q) => [q.nodeId, q.command.id]))
      const elapsed = performance.now() - t0
      const results = nodes.map((n): NodeCommandResult => {
        const id = commandOf.get(n.id)
        if (id === undefined)
          return {
            node: n.id,
            status: "offline",
            success: false,
            exit_code: null,
            stdout: "",
            stderr: offlineReason(n),
            duration: 0,
          }
        const answer = answers.get(id)
        if (!answer)
          return {
            node: n.id,
            status: "timeout",
            success: false,
            exit_code: null,
            stdout: "",
            stderr: `no answer from the agent within the ${input.timeoutSeconds} s timeout`,
            duration: seconds(elapsed),
          }
        const { ack, cancelled, ms } = answer
        // An agent that predates `run` acks it as unsupported, with its reason in `output`.
        const legacy = ack.exitCode === undefined && ack.stderr === ""
        // Killed (no exit code) after its cancel, or never delivered: one that ended on its own before
        // the cancel reached it (or on an agent that ignores cancels) answers as it ended.
        const stopped = cancelled && !ack.timedOut && ack.exitCode === null
        return {
          node: n.id,
          status: stopped
            ? "cancelled"
            : ack.timedOut
              ? "timeout"
              : ack.success && ack.exitCode === 0
                ? "ok"
                : "failed",
          success: ack.success && ack.exitCode === 0,
          exit_code: ack.exitCode ?? null,
          stdout: legacy ? "" : ack.output,
          stderr: legacy ? ack.output : (ack.stderr ?? ""),
          duration: seconds(ms),
        }
      })
      const answer = commandResults(results, elapsed)
      log.info("relayed", { nodes: nodes.length, ...answer.summary, ms: Math.round(elapsed) })
      return answer
    },
  }
}

export type Relay = ReturnType<typeof createRelay>
