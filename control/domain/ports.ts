// The control plane's ports: interfaces the domain depends on. Adapters implement them
// (control/adapters); the composition root (control/server.ts) wires one of each.
import type { AgentCommand, NodeHealth } from "../../protocol/agent.ts"
import type { Role } from "./auth/roles.ts"
import type { FleetEvent, NewEvent } from "./events.ts"
import type { NodeRecord } from "./node.ts"

export interface EventQuery {
  nodeId?: string
  types?: string[]
  afterId?: number
  limit: number
  /** The page stops before this many bytes of event data (it always holds one event). */
  maxBytes?: number
}

export interface JoinTokenRecord {
  tokenHash: string
  nodeId: string | null
  expiresAt: string
  usedAt: string | null
}

/** A person or automation: a login session (JWT), a named API token, or the bootstrap admin token. */
export interface UserPrincipal {
  kind: "user"
  /** Stable id: the user's id, or `token:<id>` for an API token. */
  subject: string
  /** What the audit log shows: the username, or the token's name. */
  name: string
  role: Role
  via: "session" | "api-token"
  sessionId: string | null
  userId: string | null
  tokenId: string | null
  /**
   * Who answers for what this principal makes: a session's user; for an API token, whoever answers for
   * the token (its creator's owner), so that a token made with a token still falls when that user is
   * demoted or removed. The bootstrap admin token answers for itself, and for the tokens made with it.
   */
  owner: string
}

/** A node agent, with its per-node credential; it may act only as itself. */
export interface NodePrincipal {
  kind: "node"
  nodeId: string
  /** The control plane wants this credential replaced (on request or because it is old). */
  rotationDue: boolean
}

export type Principal = UserPrincipal | NodePrincipal

export interface StoredCommand {
  command: AgentCommand
  nodeId: string
  /** The relay (POST /api/fleet/run) that queued it, by which a cancel finds it. */
  runId?: string
}

/** One command of a relayed run, as a cancel reads it. */
export interface RunCommandRecord {
  id: string
  nodeId: string
  /** The shell command (redacted once the run has ended). */
  command: string
  answered: boolean
}

/** Durable state. Every write resolves only once it is committed. */
export interface StorePort {
  migrate(): Promise<number>
  close(): Promise<void>

  // Tokens and credentials are stored as SHA-256 hashes, never in clear.
  putApiToken(token: { id: string; name: string; tokenHash: string; role: string; createdAt: string }): Promise<void>
  createJoinToken(token: {
    tokenHash: string
    nodeId: string | null
    createdAt: string
    expiresAt: string
  }): Promise<void>
  /** Marks the join token used and (re-)enrols the node with a new credential, atomically. */
  redeemJoinToken(input: {
    tokenHash: string
    nodeId: string
    hostname: string
    agentVersion: string
    credentialHash: string
    /** The agent chose the credential: a repeat with the same token, node and hash is the same enrolment. */
    agentChosen: boolean
    /** The configuration names a machine by this id: a token for no node in particular may not enrol it. */
    configured?: boolean
    now: string
  }): Promise<
    | { ok: true; created: boolean; repeated: boolean }
    | {
        ok: false
        reason: "unknown" | "used" | "revoked" | "expired" | "wrong-node" | "taken" | "removed" | "configured"
      }
  >

  getNode(id: string): Promise<NodeRecord | null>
  listNodes(): Promise<NodeRecord[]>
  recordHeartbeat(
    health: NodeHealth,
    receivedAt: string,
  ): Promise<{ wasUnreachable: boolean; desiredPath: string | null }>
  /**
   * Takes a heartbeat at once when it changes nothing the store must write now (the SQLite hot path's
   * quiet heartbeats, held: sqlite-hot-path.ts) and answers with the node's desired closure; undefined
   * when recordHeartbeat must take it. A store that holds nothing has none.
   */
  holdHeartbeat?(health: NodeHealth, receivedAt: string): { desiredPath: string | null } | undefined
  /** Sets the closure and queues its command; null when there is no such node in the fleet (removed). */
  setDesired(nodeId: string, closure: string, command: AgentCommand): Promise<{ supersededCommands: string[] } | null>
  /** Nodes silent for more than `missed` intervals since `since`, flipped to unreachable (each once). */
  markUnreachable(now: string, since: string, missed: number): Promise<NodeRecord[]>

  /**
   * Appends agent reports (skipping any seq already stored) and returns the highest stored seq; null
   * when the node was removed from the fleet (nothing stored).
   */
  appendReports(nodeId: string, events: NewEvent[]): Promise<{ ackedSeq: number; stored: FleetEvent[] } | null>
  appendEvent(event: NewEvent): Promise<FleetEvent>
  listEvents(query: EventQuery): Promise<FleetEvent[]>
  /** The id of the oldest of the newest `limit` events that match, or null when none does. */
  eventTailStart(query: EventQuery): Promise<number | null>

  /**
   * Commands to hand a node now, marked delivered: those never delivered, and those delivered before
   * `redeliverBefore` and still unacknowledged, except `run`, which is delivered at most once (a shell
   * command is not safe to run twice because an ack was lost or the agent restarted). Only while
   * `credentialHash` is still the node's credential, checked in the same transaction as the marking:
   * null (nothing marked) when it was revoked or replaced, however long ago the poll that asks began.
   * `cancel`: the ids of delivered, unacknowledged commands whose caller cancelled them, not yet told
   * the agent (or told before `redeliverBefore`), marked told.
   */
  pendingCommands(
    nodeId: string,
    credentialHash: string,
    now: string,
    redeliverBefore: string,
  ): Promise<{ commands: AgentCommand[]; cancel: string[] } | null>
  /**
   * The acked command's kind and whether its caller had cancelled it, or null when it was not pending
   * for that node.
   */
  ackCommand(
    nodeId: string,
    commandId: string,
    success: boolean,
    output: string,
    now: string,
    run?: { exitCode: number | null; stderr: string; timedOut: boolean },
  ): Promise<{ kind: AgentCommand["kind"]; cancelled: boolean } | null>
  /** Queues commands for their nodes, all in one transaction. */
  enqueueCommands(commands: StoredCommand[]): Promise<void>
  /** The commands a relayed run queued (none when no run has that id). */
  runCommands(runId: string): Promise<RunCommandRecord[]>
  /**
   * Cancels unacknowledged commands: one never delivered is closed with `reason` (never to be
   * delivered), one delivered is marked for its agent to stop (pendingCommands' `cancel`).
   */
  cancelCommands(
    ids: string[],
    now: string,
    reason: string,
  ): Promise<{ closed: { id: string; nodeId: string }[]; signalled: { id: string; nodeId: string }[] }>
  /** Closes commands still unacknowledged (never to be delivered again); returns the ids it closed. */
  expireCommands(ids: string[], now: string, reason: string): Promise<string[]>
  /** The acknowledged ones among `ids`, with what their agents answered. */
  commandResults(ids: string[]): Promise<CommandResultRecord[]>
  /** Deletes commands answered (or closed) before `answeredBefore`; returns how many. */
  pruneCommands(answeredBefore: string): Promise<number>
  /** Deletes events received before `receivedBefore`, a batch at a time; returns how many. */
  pruneEvents(receivedBefore: string): Promise<number>
  /** Replaces the stored payload of finished commands (the relay keeps only a redacted command). */
  scrubCommands(ids: string[], payload: string): Promise<void>
}

export interface CommandResultRecord {
  id: string
  nodeId: string
  success: boolean
  output: string
  exitCode: number | null
  /** null when the ack carried no run result (an agent that predates `run`). */
  stderr: string | null
  /** An agent's kill at the timeout, or the control plane's expiry of a command never answered. */
  timedOut: boolean
  /** Its caller cancelled it (before or after its agent took it). */
  cancelled: boolean
  ackedAt: string
}

/** Publish/subscribe for events already stored: a subscriber never sees an event the store lacks. */
export interface EventBusPort {
  publish(events: FleetEvent[]): void
  subscribe(handler: (event: FleetEvent) => void): () => void
}

export interface Clock {
  now(): Date
}

export const systemClock: Clock = { now: () => new Date() }
