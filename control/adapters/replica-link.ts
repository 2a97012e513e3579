// Wake-ups between control-plane replicas on one PostgreSQL database, over LISTEN/NOTIFY. What one
// replica commits another may be waiting for: an agent's long poll held by replica B for a command
// queued (or a desired closure set) through A; B's event streams for events A stored; A's chat turn
// that a cancel or a delete through B asked to stop (turn-lease.ts); B's followers of a chat turn that
// A runs, for its new events (turn-feed.ts). Each replica
// tells the others with a NOTIFY on one channel after the commit, carrying only ids (node ids, event
// ids): the data is read from the store, never from the notification, so a forged or garbled one
// can at worst cause a read. A replica ignores its own notifications (each carries its instance id).
// Notifications made in one turn of the event loop go out together, split to fit PostgreSQL's 8000
// bytes. The listening connection is Bun.SQL's own: dropped, it reconnects with backoff and listens
// again, and `reconnected` runs so the replica catches up on what it may have missed meanwhile.
// SQLite is one process; it has no link.
import { randomUUID } from "node:crypto"
import type { SQL } from "bun"
import { createLogger } from "../../protocol/log.ts"

const log = createLogger("replica-link")

export const CHANNEL = "chimera_replicas"
/** Payload bytes per NOTIFY, below PostgreSQL's 8000 with room for the header. */
const MAX_PAYLOAD = 7000

export interface ReplicaHandlers {
  /** Commands wait for these nodes (a long poll held here should look again). */
  nodes(ids: string[]): void
  /** Events of these ids were stored by another replica. */
  events(ids: number[]): void
  /** Relayed commands of these ids were answered through another replica. */
  acks(ids: string[]): void
  /** The turns of these chats were asked to cancel through another replica (their lease rows say so). */
  turnsCancelled(chatIds: number[]): void
  /** The turns of these chats, running on another replica, wrote new events (turn-feed.ts). */
  turnEvents(chatIds: number[]): void
  /** Listening again after the connection dropped: notifications meanwhile may be lost. */
  reconnected(): void
}

export interface ReplicaLink {
  commandsQueued(nodeIds: string[]): void
  eventsStored(ids: number[]): void
  commandsAcked(ids: string[]): void
  turnsCancelled(chatIds: number[]): void
  turnEvents(chatIds: number[]): void
  close(): Promise<void>
}

type Kind = "n" | "e" | "a" | "t" | "f"

/**
 * Ids one notification names at most. Any role that may connect to the database may NOTIFY, so a
 * notification's text is anyone's: this bounds the reads one can cause (a run alone once held 10,001,
 * and 8000 bytes hold over 400 runs). The sender splits its ids to fit.
 */
export const MAX_IDS = 10_000

/** Event ids as runs (`10-45,47`): ids stored together are mostly consecutive; no run names more than MAX_IDS. */
export function encodeIds(ids: number[]): string[] {
  const sorted = [...new Set(ids)].sort((a, b) => a - b)
  const runs: string[] = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && j - i + 1 < MAX_IDS && sorted[j + 1] === (sorted[j] as number) + 1) j++
    runs.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return runs
}

/** How many ids a part names: a run's length, or one. */
const idsIn = (part: string) => {
  const m = /^(\d+)-(\d+)$/.exec(part)
  return m ? Number(m[2]) - Number(m[1]) + 1 : 1
}

/** The ids `encodeIds` wrote; anything else in the text is skipped, and no text names more than MAX_IDS. */
export function decodeIds(text: string): number[] {
  const ids: number[] = []
  for (const run of text.split(",")) {
    const m = /^(\d{1,15})(?:-(\d{1,15}))?$/.exec(run)
    if (!m) continue
    const from = Number(m[1])
    const to = m[2] === undefined ? from : Math.min(Number(m[2]), from + MAX_IDS - ids.length - 1)
    for (let id = from; id <= to; id++) ids.push(id)
    if (ids.length >= MAX_IDS) break
  }
  return ids
}

export async function linkReplicas(db: SQL, handlers: ReplicaHandlers): Promise<ReplicaLink> {
  const self = randomUUID()
  const pending: Record<Kind, string[]> = { n: [], e: [], a: [], t: [], f: [] }
  let scheduled = false
  let listened = false

  const flush = () => {
    scheduled = false
    for (const kind of ["n", "e", "a", "t", "f"] as const) {
      const parts = pending[kind]
      if (parts.length === 0) continue
      pending[kind] = []
      let payload = ""
      let count = 0
      const send = () => {
        if (payload === "") return
        const text = `${self} ${kind} ${payload}`
        payload = ""
        count = 0
        db.notify(CHANNEL, text).catch((error: unknown) => log.warn("telling the other replicas failed", { error }))
      }
      for (const part of [...new Set(parts)]) {
        const n = kind === "e" || kind === "t" || kind === "f" ? idsIn(part) : 1
        if (payload.length + part.length + 1 > MAX_PAYLOAD || count + n > MAX_IDS) send()
        payload = payload === "" ? part : `${payload},${part}`
        count += n
      }
      send()
    }
  }
  const queue = (kind: Kind, parts: string[]) => {
    if (parts.length === 0) return
    pending[kind].push(...parts)
    if (scheduled) return
    scheduled = true
    setImmediate(flush)
  }

  const receive = (payload: string) => {
    const [from, kind, list = ""] = payload.split(" ")
    if (from === self || list === "") return
    if (kind === "n") handlers.nodes(list.split(","))
    else if (kind === "e") handlers.events(decodeIds(list))
    else if (kind === "a") handlers.acks(list.split(","))
    else if (kind === "t") handlers.turnsCancelled(decodeIds(list))
    else if (kind === "f") handlers.turnEvents(decodeIds(list))
  }
  const subscription = await db.listen(CHANNEL, receive, () => {
    if (listened) {
      log.info("listening to the other replicas again; catching up")
      handlers.reconnected()
    }
    listened = true
  })

  return {
    commandsQueued: (nodeIds) => queue("n", nodeIds),
    eventsStored: (ids) => queue("e", encodeIds(ids)),
    commandsAcked: (ids) => queue("a", ids),
    turnsCancelled: (chatIds) => queue("t", encodeIds(chatIds)),
    turnEvents: (chatIds) => queue("f", encodeIds(chatIds)),
    async close() {
      flush()
      await subscription.unlisten()
    },
  }
}
