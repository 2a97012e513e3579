// The fleet use cases: enrolment, heartbeats, agent reports, desired state, relayed commands and
// reachability. It speaks only to ports (store, event bus, clock); the API and the CLI call it.
import { randomUUID } from "node:crypto"
import type {
  AgentCommand,
  AgentReport,
  CommandAck,
  CommandList,
  EnrollRequest,
  NodeHealth,
} from "../../protocol/agent.ts"
import { createLogger } from "../../protocol/log.ts"
import { conflict, notFound, unauthenticated } from "./errors.ts"
import type { ControlEventType, EventType, FleetEvent, NewEvent } from "./events.ts"
import { MISSED_HEARTBEATS, type NodeRecord } from "./node.ts"
import type { Clock, EventBusPort, EventQuery, StoredCommand, StorePort } from "./ports.ts"
import { storeAway } from "./store-away.ts"
import { hashToken, newToken, tokenKind } from "./tokens.ts"

const log = createLogger("fleet")

/** A join token lasts 30 minutes unless the operator asks otherwise: time to install a node, short if leaked. */
export const DEFAULT_JOIN_TOKEN_TTL_SECONDS = 30 * 60
/** A command delivered but not acknowledged this long is delivered again. */
const REDELIVER_AFTER_MS = 60_000
/**
 * Long polls one node may hold at once. An agent holds one; a few more cover a restart whose old
 * poll is still open. Past that, the oldest is answered at once: a node credential cannot pile up
 * connections and timers here.
 */
export const MAX_POLLS_PER_NODE = 4

/** `cancelled`: its caller had cancelled the command before this ack. */
export type AckListener = (nodeId: string, commandId: string, ack: CommandAck, cancelled: boolean) => void

export interface FleetDeps {
  store: StorePort
  bus: EventBusPort
  clock: Clock
  /** Sees every heartbeat taken (the dashboard's health history). */
  onHeartbeat?: (health: NodeHealth) => void
  /** Other replicas on the same database, told when commands wait for a node (their long polls). */
  peers?: { commandsQueued(nodeIds: string[]): void; commandsAcked(ids: string[]): void }
  /**
   * Whether the configuration names a machine by this id ([fleet.nodes]): only a join token issued
   * for that id may enrol it. Enrolled under a configured machine's name, an agent answers for that
   * machine (congruence, relayed commands and their text, the dashboard), whoever runs it.
   */
  configured?: (nodeId: string) => boolean
}

export function createFleet({ store, bus, clock, onHeartbeat, peers, configured }: FleetDeps) {
  const now = () => clock.now().toISOString()
  const waiters = new Map<string, Set<() => void>>()
  const ackListeners = new Set<AckListener>()
  // Silence counts from when this control plane could hear heartbeats: its start, or the end of a
  // time its store could not be reached. Every heartbeat was refused meanwhile, so a node that kept
  // its schedule missed none; counted from its last one taken, the whole fleet would turn unreachable
  // (and page) the moment the database came back, before the next heartbeat.
  let hearingSince = now()

  const emit = async (type: EventType, nodeId: string | null, data: Record<string, unknown>) => {
    const at = now()
    const event = await store.appendEvent({ type, nodeId, at, data, receivedAt: at })
    bus.publish([event])
    return event
  }

  const wakeHere = (nodeId: string) => {
    for (const resolve of waiters.get(nodeId) ?? []) resolve()
    waiters.delete(nodeId)
  }
  const wake = (nodeIds: string[]) => {
    for (const nodeId of nodeIds) wakeHere(nodeId)
    peers?.commandsQueued(nodeIds)
  }

  const requireNode = async (id: string): Promise<NodeRecord> => {
    const node = await store.getNode(id)
    if (!node) throw notFound(`node ${JSON.stringify(id)}`)
    return node
  }

  return {
    async createJoinToken(opts: { ttlSeconds?: number; nodeId?: string }) {
      const token = newToken("join")
      const createdAt = clock.now()
      const expiresAt = new Date(
        createdAt.getTime() + (opts.ttlSeconds ?? DEFAULT_JOIN_TOKEN_TTL_SECONDS) * 1000,
      ).toISOString()
      await store.createJoinToken({
        tokenHash: hashToken(token),
        nodeId: opts.nodeId ?? null,
        createdAt: createdAt.toISOString(),
        expiresAt,
      })
      return { token, expiresAt, nodeId: opts.nodeId ?? null }
    },

    async enroll(joinToken: string, req: EnrollRequest) {
      if (tokenKind(joinToken) !== "join")
        throw unauthenticated("enrolment needs a join token (chimera nodes join-token)")
      // An agent that made its own credential sends only its hash (protocol/agent.ts, EnrollRequest).
      const credential = req.credentialHash === undefined ? newToken("node") : null
      const result = await store.redeemJoinToken({
        tokenHash: hashToken(joinToken),
        nodeId: req.nodeId,
        hostname: req.hostname,
        agentVersion: req.agentVersion,
        credentialHash: req.credentialHash ?? hashToken(credential as string),
        agentChosen: req.credentialHash !== undefined,
        configured: configured?.(req.nodeId) ?? false,
        now: now(),
      })
      if (!result.ok) {
        const why = {
          unknown: "the join token is unknown",
          used: "the join token was already used (join tokens are single-use)",
          revoked: `the join token was cancelled when node ${JSON.stringify(req.nodeId)} was revoked; create a new one with \`chimera nodes join-token --node ${req.nodeId}\``,
          expired: "the join token has expired; create a new one with `chimera nodes join-token`",
          "wrong-node": `the join token was issued for another node, not ${JSON.stringify(req.nodeId)}`,
          taken: `node ${JSON.stringify(req.nodeId)} is already enrolled; re-enrolling it needs a join token issued for it (chimera nodes join-token --node ${req.nodeId})`,
          removed: `node ${JSON.stringify(req.nodeId)} was removed from the fleet; enrolling a machine under its name needs a join token issued for it (chimera nodes join-token --node ${req.nodeId})`,
          configured: `node ${JSON.stringify(req.nodeId)} is a machine of the control plane's [fleet.nodes]; enrolling it needs a join token issued for it (chimera nodes join-token --node ${req.nodeId})`,
        }[result.reason]
        throw unauthenticated(why)
      }
      if (result.repeated) {
        log.info("node enrolment repeated (its answer was lost)", { node: req.nodeId })
        return { nodeId: req.nodeId }
      }
      // Re-enrolment replaced the node's credential: polls held with the old one end now.
      if (!result.created) wake([req.nodeId])
      await emit("node.enrolled", req.nodeId, {
        hostname: req.hostname,
        agentVersion: req.agentVersion,
        reenrolled: !result.created,
      })
      log.info("node enrolled", { node: req.nodeId, reenrolled: !result.created })
      return credential === null ? { nodeId: req.nodeId } : { nodeId: req.nodeId, credential }
    },

    /**
     * A heartbeat the store takes at once (StorePort.holdHeartbeat: a quiet one, nothing to write or
     * tell anyone now), answered without a promise; null when `heartbeat` must take it.
     */
    heartbeatHeld(health: NodeHealth): { desired: string | null } | null {
      const held = store.holdHeartbeat?.(health, now())
      if (!held) return null
      onHeartbeat?.(health)
      return { desired: held.desiredPath }
    },

    async heartbeat(health: NodeHealth) {
      const { wasUnreachable, desiredPath } = await store.recordHeartbeat(health, now())
      onHeartbeat?.(health)
      if (wasUnreachable) await emit("node.reachable", health.nodeId, {})
      return { desired: desiredPath }
    },

    async ingestReports(nodeId: string, reports: AgentReport[]) {
      const receivedAt = now()
      const events: NewEvent[] = reports.map((r) => ({
        receivedAt,
        type: r.type,
        nodeId,
        at: r.at,
        data: { ...r.data, seq: r.seq },
        agentSeq: r.seq,
      }))
      const appended = await store.appendReports(nodeId, events)
      if (appended === null) throw unauthenticated(`node ${JSON.stringify(nodeId)} was removed from the fleet`)
      const { ackedSeq, stored } = appended
      bus.publish(stored)
      return { ackedSeq }
    },

    async setDesired(nodeId: string, closure: string) {
      const node = await requireNode(nodeId)
      const command: AgentCommand = { id: randomUUID(), kind: "activate", closure, createdAt: now() }
      // Removed while this ran: the same answer as a node removed before.
      if ((await store.setDesired(nodeId, closure, command)) === null) throw notFound(`node ${JSON.stringify(nodeId)}`)
      wake([nodeId])
      await emit("desired.changed", nodeId, { from: node.desiredPath, to: closure, commandId: command.id })
      return requireNode(nodeId)
    },

    /** Queues commands (one transaction) and wakes their nodes' long polls. */
    async enqueueCommands(commands: StoredCommand[]) {
      await store.enqueueCommands(commands)
      wake([...new Set(commands.map((c) => c.nodeId))])
    },

    /**
     * Cancels relayed commands (their relay's caller gave up): those not delivered yet are closed now,
     * and the relays waiting for them here and on other replicas read that; the agents of those
     * delivered hear it on their long poll (woken here and on other replicas) and ack what ran.
     */
    async cancelCommands(ids: string[], reason: string) {
      const result = await store.cancelCommands(ids, now(), reason)
      wake([...new Set(result.signalled.map((c) => c.nodeId))])
      if (result.closed.length > 0) peers?.commandsAcked(result.closed.map((c) => c.id))
      return result
    },

    /** Another replica queued commands for these nodes: the long polls held here look again. */
    wakeNodes(nodeIds: string[]) {
      for (const nodeId of nodeIds) wakeHere(nodeId)
    },

    /**
     * The node's credential was revoked or replaced: its long polls, here and on other replicas, look
     * again now, and those still holding the old credential are refused (commandsFor).
     */
    credentialRetired(nodeId: string) {
      wake([nodeId])
    },

    /** Every long poll held here looks again (after missing other replicas' wake-ups for a while). */
    wakeAll() {
      for (const nodeId of [...waiters.keys()]) wakeHere(nodeId)
    },

    /** Calls `listener` with every acknowledgement this process receives; returns the unsubscribe. */
    onAck(listener: AckListener) {
      ackListeners.add(listener)
      return () => void ackListeners.delete(listener)
    },

    /**
     * Pending commands for a node, waiting up to `waitMs` for one to arrive (long poll), for the agent
     * holding `credential`. A poll outlives the authentication it began with, so the store checks the
     * credential again each time it hands commands out: one revoked or replaced meanwhile is a 401,
     * never a command (a revocation wakes the poll to say so at once: credentialRetired).
     */
    async commandsFor(nodeId: string, credential: string, waitMs: number, signal?: AbortSignal): Promise<CommandList> {
      const credentialHash = hashToken(credential)
      const fetch = async (): Promise<CommandList> => {
        const pending = await store.pendingCommands(
          nodeId,
          credentialHash,
          now(),
          new Date(clock.now().getTime() - REDELIVER_AFTER_MS).toISOString(),
        )
        if (pending === null) throw unauthenticated("the node credential was revoked or replaced")
        // A `run`'s timeout counts from when it was queued, which is when its relay's clock started:
        // the agent gets what is left of it. One past its timeout has been answered "timeout"
        // already (or its relay died with a replica): running it now would surprise everyone, so it
        // is closed, never delivered.
        const at = clock.now().getTime()
        const late: string[] = []
        const due: AgentCommand[] = []
        for (const c of pending.commands) {
          if (c.kind !== "run") due.push(c)
          else {
            const leftMs = Date.parse(c.createdAt) + c.timeoutSeconds * 1000 - at
            if (leftMs <= 0) late.push(c.id)
            else due.push({ ...c, timeoutSeconds: Math.ceil(leftMs / 1000) })
          }
        }
        if (late.length > 0) await store.expireCommands(late, now(), "expired before the agent fetched it")
        return pending.cancel.length > 0 ? { commands: due, cancel: pending.cancel } : { commands: due }
      }
      if (waitMs <= 0 || signal?.aborted) return fetch()
      // The waiter is in place before the first read: a command committed (and its wake-up sent)
      // between that read and the wait still ends the wait at once.
      let woken = false
      let ended = () => {}
      const set = waiters.get(nodeId) ?? new Set()
      // The oldest poll past the cap is answered now (with what is pending, usually nothing).
      const [oldest] = set.size >= MAX_POLLS_PER_NODE ? set : []
      if (oldest) {
        set.delete(oldest)
        oldest()
      }
      const wakeMe = () => {
        woken = true
        ended()
      }
      set.add(wakeMe)
      waiters.set(nodeId, set)
      // However the wait ends (a command, the timeout, the caller leaving), it leaves nothing behind:
      // no timer, no abort listener, no empty set for a node that has stopped polling.
      const leave = () => {
        set.delete(wakeMe)
        if (set.size === 0 && waiters.get(nodeId) === set) waiters.delete(nodeId)
      }
      try {
        const first = await fetch()
        if (first.commands.length > 0 || first.cancel || signal?.aborted) return first
        if (!woken)
          await new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer)
              signal?.removeEventListener("abort", done)
              resolve()
            }
            const timer = setTimeout(done, waitMs)
            signal?.addEventListener("abort", done, { once: true })
            ended = done
          })
      } finally {
        leave()
      }
      return fetch()
    },

    async ackCommand(nodeId: string, commandId: string, ack: CommandAck) {
      const run =
        ack.exitCode === undefined && ack.stderr === undefined && ack.timedOut === undefined
          ? undefined
          : { exitCode: ack.exitCode ?? null, stderr: ack.stderr ?? "", timedOut: ack.timedOut ?? false }
      const acked = await store.ackCommand(nodeId, commandId, ack.success, ack.output, now(), run)
      if (!acked)
        throw conflict(`command ${JSON.stringify(commandId)} is not pending for node ${JSON.stringify(nodeId)}`)
      const { kind, cancelled } = acked
      for (const listener of ackListeners) listener(nodeId, commandId, ack, cancelled)
      if (kind === "run") peers?.commandsAcked([commandId])
      // A relayed `run` is recorded by its relay's audit row, not by one event per node.
      if (kind !== "run") await emit("command.acked", nodeId, { commandId, success: ack.success })
    },

    getNode: requireNode,
    /** The enrolled node of that id, or null (a name that may be an SSH target instead). */
    findNode: (id: string) => store.getNode(id),
    /** Records an event the control plane itself makes (deployments, rollbacks) and tells subscribers. */
    note: (type: ControlEventType, nodeId: string | null, data: Record<string, unknown>) => emit(type, nodeId, data),
    listNodes: () => store.listNodes(),
    listEvents: (q: EventQuery): Promise<FleetEvent[]> => store.listEvents(q),
    eventTailStart: (q: EventQuery): Promise<number | null> => store.eventTailStart(q),

    /** Forgets commands answered more than `days` ago (their output included); returns how many. */
    async pruneCommands(days: number) {
      const before = new Date(clock.now().getTime() - days * 86_400_000).toISOString()
      const pruned = await store.pruneCommands(before)
      if (pruned > 0) log.info("pruned answered commands", { pruned, before })
      return pruned
    },

    /** Forgets events received more than `days` ago; returns how many. */
    async pruneEvents(days: number) {
      const before = new Date(clock.now().getTime() - days * 86_400_000).toISOString()
      const pruned = await store.pruneEvents(before)
      if (pruned > 0) log.info("pruned old events", { pruned, before })
      return pruned
    },

    async sweepUnreachable() {
      const lost = await store.markUnreachable(now(), hearingSince, MISSED_HEARTBEATS).catch((error: unknown) => {
        // Only the database away refused the heartbeats: a sweep failing otherwise (a deadlock, a
        // timeout) took nothing from the nodes, and each such failure would give a dead node more time.
        if (storeAway(error)) hearingSince = now()
        throw error
      })
      for (const [i, node] of lost.entries()) {
        // A network split flips thousands at once; the store's answers never yield to I/O, so the
        // heartbeats of the nodes still up get the event loop every few dozen events.
        if (i % 32 === 31) await new Promise((resolve) => setImmediate(resolve))
        log.warn("node unreachable", { node: node.id, lastHeartbeat: node.lastHeartbeat })
        await emit("node.unreachable", node.id, {
          lastHeartbeat: node.lastHeartbeat,
          missedHeartbeats: MISSED_HEARTBEATS,
        })
      }
      return lost.length
    },
  }
}

export type Fleet = ReturnType<typeof createFleet>
