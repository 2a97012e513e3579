// Following a running turn from any replica. A turn's events (turns.ts) reach the requests of the
// replica that runs it; where replicas share PostgreSQL, that replica also writes them to the store,
// a few at a time (the model's words coalesced, every FLUSH_MS, and at once for the turn's last
// event), and tells the others which chat has new ones (a NOTIFY naming the chat: PostgreSQL's
// 8000-byte payload could not hold the words). A follower on another replica reads the rows of that
// turn from its start, then each batch as its notification comes, or at the latest every POLL_MS (a
// notification lost while the listening connection was down). A turn whose lease is gone without a
// last event (its replica stopped or died) ends the follow with an error saying so. SQLite has one
// process: turns are followed there from memory (turns.ts), and nothing is written.
import { type ChatStreamEvent, isLastEvent } from "../../protocol/ai.ts"
import { createLogger } from "../../protocol/log.ts"
import type { Listener } from "./turns.ts"

const log = createLogger("ai")

/** How long the words of a turn gather before they are written for followers. */
const FLUSH_MS = 100
/** How often a follower reads the store unwoken. */
const POLL_MS = 1000
/** How long a follower waits for a turn's last event once its lease is gone (it is written after the release). */
const LAST_EVENT_GRACE_MS = 2000
/** Rows read at once. */
export const PAGE = 500

export interface TurnEventStore {
  /** Appends a turn's events; `first`, the turn's first batch, also drops the chat's turns before the one just ended. */
  append(chatId: number, turn: string, events: ChatStreamEvent[], first: boolean): Promise<void>
  /** The turn's events after row `afterId`, in order, PAGE at most. */
  since(chatId: number, turn: string, afterId: number): Promise<{ id: number; event: ChatStreamEvent }[]>
}

export interface TurnFeedDeps {
  store: TurnEventStore
  /** Tells the other replicas that this chat's turn has new events. */
  told(chatId: number): void
  /** The id of the chat's live turn lease, on any replica. */
  liveTurn(chatId: number): Promise<string | null>
}

interface Outgoing {
  chatId: number
  pending: ChatStreamEvent[]
  first: boolean
  timer: ReturnType<typeof setTimeout> | null
  written: Promise<void>
}

export function createTurnFeed(deps: TurnFeedDeps) {
  const outgoing = new Map<string, Outgoing>()
  const wakers = new Map<number, Set<() => void>>()

  const flush = (turn: string, o: Outgoing) => {
    if (o.timer) clearTimeout(o.timer)
    o.timer = null
    const events = o.pending.splice(0)
    if (events.length === 0) return
    const first = o.first
    o.first = false
    o.written = o.written
      .then(() => deps.store.append(o.chatId, turn, events, first))
      .then(() => deps.told(o.chatId))
      .catch((error: unknown) => log.warn("writing a turn's events for followers failed", { chat: o.chatId, error }))
  }

  return {
    /** A turn running here said `e`: written for followers elsewhere. */
    publish(chatId: number, turn: string, e: ChatStreamEvent): void {
      let o = outgoing.get(turn)
      if (!o) {
        o = { chatId, pending: [], first: true, timer: null, written: Promise.resolve() }
        outgoing.set(turn, o)
      }
      const last = o.pending.at(-1)
      if (e.event === "token" && last?.event === "token")
        o.pending[o.pending.length - 1] = { event: "token", data: { text: last.data.text + e.data.text } }
      else o.pending.push(e)
      if (isLastEvent(e)) {
        flush(turn, o)
        outgoing.delete(turn)
      } else if (!o.timer) {
        const held = o
        o.timer = setTimeout(() => flush(turn, held), FLUSH_MS)
        o.timer.unref?.()
      }
    },

    /** Another replica wrote new events of these chats' turns. */
    stored(chatIds: number[]): void {
      for (const id of chatIds) for (const wake of wakers.get(id) ?? []) wake()
    },

    /** Hands turn `turn`'s events to `listener`, from its first, until its last; returns how to stop. */
    follow(chatId: number, turn: string, listener: Listener): () => void {
      let stopped = false
      // A wake-up that comes while the store is being read is kept for the wait after it.
      let woken = false
      let wake = () => {}
      const wakeUp = () => {
        woken = true
        wake()
      }
      const set = wakers.get(chatId) ?? new Set()
      set.add(wakeUp)
      wakers.set(chatId, set)
      const stop = () => {
        stopped = true
        wake()
        set.delete(wakeUp)
        if (set.size === 0 && wakers.get(chatId) === set) wakers.delete(chatId)
      }
      const run = async () => {
        let after = 0
        let goneAt: number | null = null
        while (!stopped) {
          woken = false
          const rows = await deps.store.since(chatId, turn, after)
          for (const r of rows) {
            after = r.id
            listener(r.event)
            if (isLastEvent(r.event)) return
          }
          if (rows.length === PAGE) continue
          let waitMs = POLL_MS
          if (rows.length === 0 && (await deps.liveTurn(chatId)) !== turn) {
            if (goneAt !== null && Date.now() - goneAt >= LAST_EVENT_GRACE_MS) {
              listener({
                event: "error",
                data: {
                  code: "TURN_ENDED",
                  message: `turn ${turn} of chat ${chatId} stopped without finishing (its control-plane replica stopped, or lost the database); GET /api/v1/ai/chat/${chatId} shows what it stored`,
                },
              })
              return
            }
            goneAt ??= Date.now()
            waitMs = LAST_EVENT_GRACE_MS / 4
          }
          if (woken) continue
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, waitMs)
            wake = () => {
              clearTimeout(timer)
              resolve()
            }
          })
        }
      }
      run()
        .catch((error: unknown) => {
          log.warn("following a turn failed", { chat: chatId, error })
          if (!stopped)
            listener({
              event: "error",
              data: { code: "STORE_UNAVAILABLE", message: "reading the turn's events failed; follow it again" },
            })
        })
        .finally(stop)
      return stop
    },
  }
}

export type TurnFeed = ReturnType<typeof createTurnFeed>
