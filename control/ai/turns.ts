// The turns running now, one per chat at most: how to cancel one, the steering messages waiting for
// its next model call, and who listens to its events (a streamed request). A turn's outcome is a
// promise; its events go to every listener, ending with `done` or `error`. Turns live in this process
// only: what they produce is stored as it happens, so a restart loses the turn, not the conversation.
import type { ChatStreamEvent, MessageResponse } from "../../protocol/ai.ts"
import { ChimeraError } from "../domain/errors.ts"

export type Listener = (e: ChatStreamEvent) => void

export interface TurnControl {
  emit: Listener
  signal: AbortSignal
  /** Steering messages sent since the last call; each is handed out once. */
  takeSteering(): string[]
  /** Whether steering messages wait for the next call (the turn must not end without reading them). */
  steered(): boolean
}

export interface RunningTurn {
  outcome: Promise<MessageResponse>
  listen(l: Listener): () => void
}

interface Entry {
  outcome: Promise<unknown> | null
  controller: AbortController
  steering: string[]
  listeners: Set<Listener>
}

export function createTurns() {
  const running = new Map<number, Entry>()
  return {
    isRunning: (chatId: number) => running.has(chatId),

    /** Starts a turn; `first` hears every event from the start. */
    start(chatId: number, run: (t: TurnControl) => Promise<MessageResponse>, first: Listener | null): RunningTurn {
      if (running.has(chatId))
        throw new ChimeraError("TURN_RUNNING", "a turn of this chat is running: steer it, cancel it or wait for it")
      const entry: Entry = { outcome: null, controller: new AbortController(), steering: [], listeners: new Set() }
      if (first) entry.listeners.add(first)
      running.set(chatId, entry)
      const emit: Listener = (e) => {
        for (const l of entry.listeners) l(e)
      }
      const outcome = (async () => {
        try {
          const result = await run({
            emit,
            signal: entry.controller.signal,
            takeSteering: () => entry.steering.splice(0),
            steered: () => entry.steering.length > 0,
          })
          running.delete(chatId)
          emit({ event: "done", data: result })
          return result
        } catch (error) {
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

    steer(chatId: number, message: string): boolean {
      const entry = running.get(chatId)
      if (!entry) return false
      entry.steering.push(message)
      return true
    },

    /** Stops every turn (the control plane is stopping). */
    abortAll() {
      for (const entry of running.values()) entry.controller.abort()
    },
  }
}

export type Turns = ReturnType<typeof createTurns>
