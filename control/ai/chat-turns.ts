// A chat's turn wherever it runs: in this process (turns.ts) or, where replicas share PostgreSQL, on
// the replica holding the chat's lease (turn-lease.ts). The chat's use cases (chats.ts) ask whether a
// turn runs, which one, to cancel it or to follow it, and get one answer for both places: a cancel
// that reaches no turn here marks the lease row and wakes its holder; a follow of a turn running
// elsewhere reads the events its replica writes to the store (turn-feed.ts).
import type { MessageResponse } from "../../protocol/ai.ts"
import type { Clock } from "../domain/ports.ts"
import { createTurnFeed, type TurnEventStore } from "./turn-feed.ts"
import { createTurnLeases, type TurnLeaseStore } from "./turn-lease.ts"
import { createTurns, type Listener } from "./turns.ts"

export interface ChatTurnsDeps {
  leases: TurnLeaseStore
  clock: Clock
  /** This replica's name, on the leases it holds. */
  replica: string
  leaseMs: number
  /** Tells the other replicas that a turn of this chat was asked to cancel (a no-op on SQLite). */
  cancelElsewhere(chatId: number): void
  /**
   * Where replicas share the store: the turns' events, for following a turn through any replica, and
   * how the others hear of new ones. Null on SQLite (one process: turns are followed from memory).
   */
  feed: { store: TurnEventStore; told(chatId: number): void } | null
  /** Runs once a turn is over (turns.ts `ended`). */
  ended(chatId: number, outcome: MessageResponse | null): Promise<void>
}

export function createChatTurns(deps: ChatTurnsDeps) {
  const leases = createTurnLeases({
    store: deps.leases,
    clock: deps.clock,
    holder: deps.replica,
    leaseMs: deps.leaseMs,
  })
  const feed = deps.feed
    ? createTurnFeed({ ...deps.feed, liveTurn: async (chatId) => (await leases.holder(chatId))?.lease ?? null })
    : null
  const turns = createTurns(leases, deps.ended, feed ? (chatId, turnId, e) => feed.publish(chatId, turnId, e) : null)

  return {
    start: turns.start,
    /** Cancels the chat's turn here, if any, and waits until it has let its lease go. */
    stop: turns.stop,
    /** A turn of the chat runs in this process (it may still be taking its lease). */
    runsHere: turns.isRunning,

    /** A turn of the chat runs here or, its lease live, on another replica. */
    async running(chatId: number): Promise<boolean> {
      return turns.isRunning(chatId) || (await leases.holder(chatId)) !== null
    },

    /** The id of the chat's running turn, wherever it runs (null too while one here takes its lease). */
    async runningId(chatId: number): Promise<string | null> {
      return turns.turnId(chatId) ?? (await leases.holder(chatId))?.lease ?? null
    },

    /**
     * Asks the chat's turn (only turn `turnId`, when given) to stop, here or on another replica; false
     * when no turn holds the chat, or another turn does.
     */
    async cancel(chatId: number, turnId?: string): Promise<boolean> {
      if (turns.cancel(chatId, turnId)) return true
      if (!(await leases.requestCancel(chatId, turnId))) return false
      deps.cancelElsewhere(chatId)
      return true
    },

    /**
     * Hands the chat's running turn to `listener`, from its first event to its last, wherever it runs;
     * returns how to stop, or null when no turn runs.
     */
    async follow(chatId: number, listener: Listener): Promise<(() => void) | null> {
      const here = turns.follow(chatId, listener)
      if (here) return here
      const elsewhere = feed ? await leases.holder(chatId) : null
      return feed && elsewhere ? feed.follow(chatId, elsewhere.lease, listener) : null
    },

    /** Another replica wrote new events of these chats' turns: their followers here read them. */
    eventsStored: (chatIds: number[]) => feed?.stored(chatIds),

    /**
     * Another replica asked these chats' turns to cancel (null: it may have, while this one was not
     * listening): each turn here reads its lease and stops if so.
     */
    cancelAsked: (chatIds: number[] | null) => turns.check(chatIds ?? undefined),

    abortAll: turns.abortAll,
  }
}
