// The turns this process runs, one per chat at most, and across replicas one per chat at all: a turn
// starts only once it holds the chat's turn lease (turn-lease.ts), and releases it when it ends. Here
// are how to cancel one and who listens to its events (a streamed request). A turn's outcome is a
// promise; its events go to every listener, ending with `done` or `error`. What a turn produces,
// steering messages too, is stored as it happens, so a stopped process loses the turn, not the
// conversation. A turn stops taking steering messages (`close`, on its lease row, whichever replica
// queues them) before it decides to end, so none is acknowledged to a turn that then ends without it.
import type { ChatStreamEvent, MessageResponse } from "../../protocol/ai.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { HeldLease, TurnLeases } from "./turn-lease.ts"

export type Listener = (e: ChatStreamEvent) => void

export interface TurnControl {
  emit: Listener
  signal: AbortSignal
  /** No more steering messages for this turn; resolves once none is being queued. */
  close(): Promise<void>
  /** Takes steering messages again (the turn goes on after all). */
  reopen(): Promise<void>
}

export interface RunningTurn {
  outcome: Promise<MessageResponse>
  listen(l: Listener): () => void
}

interface Entry {
  outcome: Promise<unknown> | null
  controller: AbortController
  /** Null while the lease is being taken. */
  lease: HeldLease | null
  listeners: Set<Listener>
  /** Every event so far, for a follower that comes late. */
  said: ChatStreamEvent[]
}

const running = () =>
  new ChimeraError("TURN_RUNNING", "a turn of this chat is running: steer it, cancel it or wait for it")

/**
 * `ended` runs once a turn is over (before its `done` or `error`, and before its lease is released),
 * with its outcome (null: it failed), once no steering message is being queued for it. `published`
 * hears every event of every turn, for followers on other replicas (turn-feed.ts).
 */
export function createTurns(
  leases: Pick<TurnLeases, "take">,
  ended: (chatId: number, outcome: MessageResponse | null) => Promise<void>,
  published: ((chatId: number, turnId: string, e: ChatStreamEvent) => void) | null = null,
) {
  const turns = new Map<number, Entry>()
  return {
    isRunning: (chatId: number) => turns.has(chatId),

    /** Starts a turn once it holds the chat's lease (else TURN_RUNNING); `first` hears every event from the start. */
    async start(
      chatId: number,
      run: (t: TurnControl) => Promise<MessageResponse>,
      first: Listener | null,
    ): Promise<RunningTurn> {
      if (turns.has(chatId)) throw running()
      const entry: Entry = {
        outcome: null,
        controller: new AbortController(),
        lease: null,
        listeners: new Set(),
        said: [],
      }
      if (first) entry.listeners.add(first)
      // Held here before the lease is asked for, so a second start in this process waits for nothing.
      turns.set(chatId, entry)
      let lease: HeldLease
      try {
        lease = await leases.take(chatId, () => entry.controller.abort())
      } catch (error) {
        turns.delete(chatId)
        throw error
      }
      entry.lease = lease
      const emit: Listener = (e) => {
        entry.said.push(e)
        published?.(chatId, lease.id, e)
        for (const l of entry.listeners) l(e)
      }
      // First, what the turn is: a cancel that names it reaches this turn and no later one.
      emit({ event: "turn", data: { turnId: lease.id } })
      const close = () => lease.acceptSteers(false)
      const end = async (result: MessageResponse | null) => {
        try {
          await close()
          await ended(chatId, result)
        } finally {
          turns.delete(chatId)
          await lease.release()
        }
      }
      const outcome = (async () => {
        try {
          const result = await run({
            emit,
            signal: entry.controller.signal,
            close,
            reopen: () => lease.acceptSteers(true),
          })
          await end(result)
          emit({ event: "done", data: result })
          return result
        } catch (error) {
          await end(null).catch(() => {})
          const known = error instanceof ChimeraError
          emit({
            event: "error",
            data: {
              code: known ? error.code : "INTERNAL",
              message: known ? error.message : "the turn failed; the control plane's log has the details",
            },
          })
          throw error
        }
      })()
      // Nobody may be waiting (a turn resumed by an answer): its failure is already an `error` event.
      outcome.catch(() => {})
      entry.outcome = outcome
      return {
        outcome,
        listen(l) {
          entry.listeners.add(l)
          return () => entry.listeners.delete(l)
        },
      }
    },

    /** Hands the chat's turn running here to `l`: what it said so far, then what it says; null if none runs here. */
    follow(chatId: number, l: Listener): (() => void) | null {
      const entry = turns.get(chatId)
      if (!entry?.lease) return null
      for (const e of entry.said) l(e)
      entry.listeners.add(l)
      return () => entry.listeners.delete(l)
    },

    /** The id of the chat's turn running here, once it holds its lease. */
    turnId: (chatId: number): string | null => turns.get(chatId)?.lease?.id ?? null,

    /** Cancels the chat's turn running here (only if it is `turnId`, when given); false if none was. */
    cancel(chatId: number, turnId?: string): boolean {
      const entry = turns.get(chatId)
      if (!entry || (turnId !== undefined && entry.lease?.id !== turnId)) return false
      entry.controller.abort()
      return true
    },

    /** Cancels the chat's turn, if any, and waits until it has stopped writing and let its lease go. */
    async stop(chatId: number): Promise<void> {
      const entry = turns.get(chatId)
      if (!entry) return
      entry.controller.abort()
      await entry.outcome?.catch(() => {})
    },

    /** Looks at the leases of these chats' turns now (another replica asked one to cancel). */
    async check(chatIds: Iterable<number> = turns.keys()): Promise<void> {
      await Promise.all([...chatIds].map((id) => turns.get(id)?.lease?.check()))
    },

    /**
     * Stops every turn (the control plane is stopping); resolves once each has ended and let its lease
     * go, so another replica takes the chat's next message at once rather than after the lapse.
     */
    async abortAll(): Promise<void> {
      const entries = [...turns.values()]
      for (const entry of entries) entry.controller.abort()
      await Promise.allSettled(entries.map((e) => e.outcome))
    },
  }
}

export type Turns = ReturnType<typeof createTurns>
