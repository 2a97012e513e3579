// The wiring that makes replicas on one PostgreSQL database act as one, called by the composition
// root (server.ts): what this replica commits wakes the others (commands queued, a desired closure
// set, a relayed command answered, events stored, a chat's turn asked to cancel or its new events for
// followers), and what the others
// commit wakes this one's long polls, relays, live event streams and chat turns. After the listening
// connection comes back, every long poll looks again, the streams catch up from the store, and the
// chat turns read their leases. On SQLite there is one process and nothing to
// wire: the live streams read the process's own event bus.
import type { SQL } from "bun"
import { createLogger } from "../protocol/log.ts"
import { replicaEvents } from "./adapters/replica-events.ts"
import { linkReplicas, type ReplicaLink } from "./adapters/replica-link.ts"
import type { Dialect } from "./adapters/store/migrations.ts"
import type { Fleet } from "./domain/fleet.ts"
import type { EventBusPort } from "./domain/ports.ts"
import type { Relay } from "./domain/relay.ts"

const log = createLogger("replicas")

/** What the fleet tells other replicas; it works before the link is up (nothing is sent then). */
export interface Peers {
  commandsQueued(nodeIds: string[]): void
  commandsAcked(ids: string[]): void
  turnsCancelled(chatIds: number[]): void
  turnEvents(chatIds: number[]): void
  /** Set once the link is up. */
  link: ReplicaLink | null
}

export function peers(): Peers {
  const self: Peers = {
    link: null,
    commandsQueued: (nodeIds) => self.link?.commandsQueued(nodeIds),
    commandsAcked: (ids) => self.link?.commandsAcked(ids),
    turnsCancelled: (chatIds) => self.link?.turnsCancelled(chatIds),
    turnEvents: (chatIds) => self.link?.turnEvents(chatIds),
  }
  return self
}

export interface Replicas {
  /** What live event streams subscribe to: this replica's events and the others'. */
  streams: EventBusPort
  close(): Promise<void>
}

export async function connectReplicas(input: {
  db: SQL
  dialect: Dialect
  bus: EventBusPort
  fleet: Fleet
  relay: Relay
  peers: Peers
  /** These chats' turns here read their leases (null: every one); the chats are made after the link. */
  turnsCancelled(chatIds: number[] | null): void
  /** These chats' turns on another replica wrote new events: their followers here read them. */
  turnEvents(chatIds: number[]): void
}): Promise<Replicas> {
  const { db, dialect, bus, fleet, relay } = input
  if (dialect !== "postgres") return { streams: bus, close: async () => {} }
  let link: ReplicaLink | null = null
  const events = await replicaEvents(db, bus, (ids) => link?.eventsStored(ids))
  link = await linkReplicas(db, {
    nodes: (ids) => fleet.wakeNodes(ids),
    events: (ids) => void events.stored(ids),
    acks: (ids) => relay.answeredElsewhere(ids),
    turnsCancelled: (chatIds) => input.turnsCancelled(chatIds),
    turnEvents: (chatIds) => input.turnEvents(chatIds),
    reconnected: () => {
      fleet.wakeAll()
      input.turnsCancelled(null)
      events.catchUp().catch((error: unknown) => log.warn("catching up on other replicas' events failed", { error }))
    },
  })
  input.peers.link = link
  return {
    streams: events.streams,
    async close() {
      input.peers.link = null
      events.close()
      await link?.close()
    },
  }
}
