// When pending questions expire. The replica that asks a question sets a timer for its deadline, so
// it expires on time there; and every replica sweeps the store for pending questions past their
// deadline (at most SWEEP_MS apart, and at least twice per `[ai] question_ttl_seconds`), so one whose
// replica stopped or died, or one asked before a restart, expires all the same, a sweep later at
// most. Expiring is the store's compare-and-set (questions.ts): a question is settled once, whichever
// replica's timer or sweep comes first. A read of the chat expires an overdue question too (chats.ts).
import { createLogger } from "../../protocol/log.ts"
import type { Clock } from "../domain/ports.ts"
import type { ChatStorePort, QuestionRecord } from "./chat-records.ts"
import { isExpired, settleUnrun } from "./questions.ts"

const log = createLogger("ai")

const SWEEP_MS = 10_000

export function createQuestionExpiry(store: ChatStorePort, clock: Clock, ttlSeconds: number) {
  const timers = new Map<number, ReturnType<typeof setTimeout>>()
  const unschedule = (id: number) => {
    clearTimeout(timers.get(id))
    timers.delete(id)
  }
  // From its timer or a sweep: the other, if armed, has nothing left to do.
  const expire = async (q: QuestionRecord) => {
    unschedule(q.id)
    await settleUnrun(store, q, "expired", null, clock.now())
  }
  const sweep = async () => {
    for (const q of await store.pendingQuestions()) if (isExpired(q, clock)) await expire(q)
  }
  const every = Math.max(100, Math.min(SWEEP_MS, (ttlSeconds * 1000) / 2))
  const sweeper = setInterval(
    () => void sweep().catch((error: unknown) => log.warn("expiring overdue questions failed", { error })),
    every,
  )
  sweeper.unref?.()
  return {
    /** A question asked here: it expires at its deadline. */
    schedule(q: QuestionRecord) {
      const ms = Math.max(0, Date.parse(q.expiresAt) - clock.now().getTime())
      // setTimeout holds at most 2^31-1 ms; a question lives a day at most.
      const timer = setTimeout(() => void expire(q).catch(() => {}), Math.min(ms, 2 ** 31 - 1))
      timer.unref?.()
      timers.set(q.id, timer)
    },
    /** The question was settled otherwise (answered, withdrawn, expired on a read). */
    unschedule,
    /** At start: the questions left pending expire now if overdue, else at their deadline. */
    async resume() {
      for (const q of await store.pendingQuestions()) this.schedule(q)
    },
    close() {
      clearInterval(sweeper)
      for (const timer of timers.values()) clearTimeout(timer)
      timers.clear()
    },
  }
}
