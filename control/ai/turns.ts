// The turns running now, one per chat at most: how to cancel one, whether it still takes steering
// messages, and who listens to its events (a streamed request). A turn's outcome is a promise; its
// events go to every listener, ending with `done` or `error`. Turns live in this process only: what
// they produce, steering messages too, is stored as it happens, so a restart loses the turn, not the
// conversation. A turn stops taking steering messages (`close`) before it decides to end, and waits
// for those still being stored, so none is acknowledged to a turn that then ends without it.
import type { ChatStreamEvent, MessageResponse } from "../../protocol/ai.ts"
import { ChimeraError } from "../domain/errors.ts"

export type Listener = (e: ChatStreamEvent) => void

export interface TurnControl {
  emit: Listener
  signal: AbortSignal
  /** No more steering messages for this turn; resolves once those already accepted are stored. */
  close(): Promise<void>
  /** Takes steering messages again (the turn goes on after all). */
  reopen(): void
}

export interface RunningTurn {
  outcome: Promise<MessageResponse>
  listen(l: Listener): () => void
}

interface Entry {
  outcome: Promise<unknown> | null
  controller: AbortController
  accepting: boolean
  /** Steering messages being stored now. */
  storing: Set<Promise<unknown>>
  listeners: Set<Listener>
}

/**
 * `ended` runs once a turn is over (before its `done` or `error`), with its outcome (null: it failed)
 * and no steering message accepted for it still being stored.
 */
export function createTurns(ended: (chatId: number, outcome: MessageResponse | null) => Promise<void>) {
  const running = new Map<number, Entry>()
  return {
    isRunning: (chatId: number) => running.has(chatId),

    /** Starts a turn; `first` hears every event from the start. */
    start(chatId: number, run: (t: TurnControl) => Promise<MessageResponse>, first: Listener | null): RunningTurn {
      if (running.has(chatId))
        throw new ChimeraError("TURN_RUNNING", "a turn of this chat is running: steer it, cancel it or wait for it")
      const entry: Entry = {
        outcome: null,
        controller: new AbortController(),
        accepting: true,
        storing: new Set(),
        listeners: new Set(),
      }
      if (first) entry.listeners.add(first)
      running.set(chatId, entry)
      const emit: Listener = (e) => {
        for (const l of entry.listeners) l(e)
      }
      const close = async () => {
        entry.accepting = false
        await Promise.allSettled([...entry.storing])
      }
      const end = async (result: MessageResponse | null) => {
        await close()
        await ended(chatId, result)
      }
      const outcome = (async () => {
        try {
          const result = await run({
            emit,
            signal: entry.controller.signal,
            close,
            reopen: () => {
              entry.accepting = true
            },
          })
          await end(result)
          running.delete(chatId)
          emit({ event: "done", data: result })
          return result
        } catch (error) {
          await end(null).catch(() => {})
          running.delete(chatId)
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

    cancel(chatId: number): boolean {
      const entry = running.get(chatId)
      if (!entry) return false
      entry.controller.abort()
      return true
    },

    /** Cancels the chat's turn, if any, and waits until it has stopped writing. */
    async stop(chatId: number): Promise<void> {
      const entry = running.get(chatId)
      if (!entry) return
      entry.controller.abort()
      await entry.outcome?.catch(() => {})
    },

    /** Stores a steering message for the chat's running turn; false (nothing stored) when none takes one. */
    async steer(chatId: number, store: () => Promise<unknown>): Promise<boolean> {
      const entry = running.get(chatId)
      if (!entry?.accepting) return false
      const storing = store()
      entry.storing.add(storing)
      try {
        await storing
      } finally {
        entry.storing.delete(storing)
      }
      return true
    },

    /** Stops every turn (the control plane is stopping). */
    abortAll() {
      for (const entry of running.values()) entry.controller.abort()
    },
  }
}

export type Turns = ReturnType<typeof createTurns>
