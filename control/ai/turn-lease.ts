// A chat's turn is one across control-plane replicas: the replica that starts it takes the chat's
// turn lease in the store (`ai_turns`), atomically, so a second start anywhere is refused as a second
// start on one replica is (409 TURN_RUNNING). The holder renews the lease while the turn runs and
// releases it when the turn ends; a lease not renewed in time (its replica was SIGKILLed, or lost
// the database) lapses, and the next start takes it over and goes on from the stored conversation as
// after a restart. A holder that finds its lease taken over stops its turn: the chat is another's now.
// The lease row also carries what other replicas ask of the turn: whether it takes steering messages
// now (a steer is queued only while the row says so, under its lock, so none is acknowledged to a turn
// that then ends without it) and whether a cancel came through another replica (read at each renewal,
// and at once when a notification says so: the notification names the chat, the row is the word).
// The store sets and judges a lease's term by one clock, the database's where replicas share one
// (lease-clock.ts); the holder counts its own term in elapsed time from before it asked, which ends no
// later than the store's, whatever the two clocks read.
import { randomUUID } from "node:crypto"
import { createLogger } from "../../protocol/log.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { Clock } from "../domain/ports.ts"

const log = createLogger("ai")

export type TakeOutcome = "taken" | "held" | "gone"

export interface TurnLeaseStore {
  /** Takes the chat's lease for `leaseMs` when nobody holds it or its holder let it lapse. */
  takeTurn(chatId: number, lease: string, holder: string, leaseMs: number): Promise<TakeOutcome>
  /** Extends a lease still this one's by `leaseMs` from now; null when it was taken over or released, else whether a cancel was asked. */
  renewTurn(chatId: number, lease: string, leaseMs: number): Promise<{ cancel: boolean } | null>
  /** Whether the turn takes steering messages; resolves once no steer is being queued for it. */
  acceptSteers(chatId: number, lease: string, accepting: boolean): Promise<void>
  releaseTurn(chatId: number, lease: string): Promise<void>
  /** The chat's live lease (its id is the turn's) and the replica holding it, if it has not lapsed. */
  turnHolder(chatId: number): Promise<{ lease: string; holder: string } | null>
  /**
   * Marks the chat's live lease (only if it is `lease`, when given) as asked to cancel; false when no
   * turn holds one, or another turn does.
   */
  requestCancel(chatId: number, lease?: string): Promise<boolean>
  /** Drops every lease (SQLite: this process is the only one; a lease in the file is a stopped one's). */
  clearTurns(): Promise<void>
}

export interface HeldLease {
  /** The lease's id, which is the turn's (a cancel names it). */
  id: string
  /** Steering messages are taken (true) or no more (false). */
  acceptSteers(on: boolean): Promise<void>
  /** Renews now and stops the turn if it was cancelled elsewhere or lost. */
  check(): Promise<void>
  release(): Promise<void>
}

export interface TurnLeaseDeps {
  store: TurnLeaseStore
  clock: Clock
  /** This replica's name (replica-liveness.ts), for whoever looks at the row. */
  holder: string
  leaseMs: number
}

export function createTurnLeases(deps: TurnLeaseDeps) {
  const { store, clock, leaseMs } = deps
  const until = () => clock.now().getTime() + leaseMs

  return {
    /** Takes the chat's lease for a turn; `stop` ends that turn (cancelled elsewhere, or the lease lost). */
    async take(chatId: number, stop: () => void): Promise<HeldLease> {
      const lease = randomUUID()
      const firstUntil = until()
      const outcome = await store.takeTurn(chatId, lease, deps.holder, leaseMs)
      if (outcome === "gone") throw new ChimeraError("CHAT_NOT_FOUND", `chat ${chatId} not found`)
      if (outcome === "held")
        throw new ChimeraError("TURN_RUNNING", "a turn of this chat is running: steer it, cancel it or wait for it")
      let released = false
      // Three renewals per lease: one lost to a slow database still leaves the lease held.
      const every = Math.max(100, Math.floor(leaseMs / 3))
      /** When the lease lapses at the latest, on this replica's clock: its term counted from before the last take or renewal asked. */
      let heldUntil = firstUntil
      const check = async () => {
        if (released) return
        const next = until()
        let renewed: { cancel: boolean } | null
        try {
          renewed = await store.renewTurn(chatId, lease, leaseMs)
        } catch (error) {
          // Unrenewed, the lease lapses and another replica may take the chat and run a turn of its
          // own: this one stops before then, while it cannot say it still holds the chat.
          if (!released && heldUntil - clock.now().getTime() <= every) {
            log.warn("a turn's lease could not be renewed before it lapses: stopping the turn", { chat: chatId })
            stop()
          }
          throw error
        }
        if (released) return
        if (renewed === null) {
          log.warn("a turn's lease was taken over (it lapsed): stopping the turn", { chat: chatId })
          stop()
          return
        }
        heldUntil = next
        if (renewed.cancel) stop()
      }
      const timer = setInterval(() => {
        // A renewal that never answers (a database that hangs) never fails either: counted out here.
        if (!released && clock.now().getTime() >= heldUntil) {
          log.warn("a turn's lease lapsed unrenewed (the database did not answer): stopping the turn", { chat: chatId })
          stop()
        }
        void check().catch((error: unknown) => log.warn("renewing a turn's lease failed", { chat: chatId, error }))
      }, every)
      timer.unref?.()
      return {
        id: lease,
        acceptSteers: (on) => store.acceptSteers(chatId, lease, on),
        check,
        async release() {
          released = true
          clearInterval(timer)
          await store.releaseTurn(chatId, lease)
        },
      }
    },

    holder: (chatId: number) => store.turnHolder(chatId),
    requestCancel: (chatId: number, lease?: string) => store.requestCancel(chatId, lease),
  }
}

export type TurnLeases = ReturnType<typeof createTurnLeases>
