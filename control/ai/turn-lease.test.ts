// A chat's turn lease over a real SQLite store: renewed, it holds past its first term; once it can no
// longer be renewed (the database gone, or not answering), the turn is stopped by the lease's lapse at
// the latest, since another replica may then take the chat and run a turn of its own beside it.
import { expect, test } from "bun:test"
import { openTestStore } from "../../tests/support/store.ts"
import { waitFor } from "../../tests/support/wait.ts"
import { chatStore } from "../adapters/store/chat-store.ts"
import { turnLeaseStore } from "../adapters/store/turn-lease-store.ts"
import { systemClock } from "../domain/ports.ts"
import { createTurnLeases, type HeldLease } from "./turn-lease.ts"

const LEASE_MS = 600

/** A store with one chat whose turn lease is held; `stoppedAt` is when the lease stopped the turn. */
async function heldLease(name: string) {
  const opened = await openTestStore(name)
  const chat = await chatStore(opened.db, opened.dialect, systemClock).createChat({
    ownerSubject: "u",
    ownerName: "u",
    createdAt: new Date().toISOString(),
    model: "m",
    nodeId: null,
    incidentId: null,
  })
  const leases = createTurnLeases({
    store: turnLeaseStore(opened.db, opened.dialect, systemClock),
    clock: systemClock,
    holder: "replica-a",
    leaseMs: LEASE_MS,
  })
  const self = {
    opened,
    chatId: chat.id,
    stoppedAt: null as number | null,
    lease: null as HeldLease | null,
    stopped: () =>
      waitFor(
        "the turn stopped",
        async () => self.stoppedAt,
        (at) => at !== null,
        LEASE_MS * 3,
      ),
  }
  self.lease = await leases.take(chat.id, () => {
    self.stoppedAt ??= Date.now()
  })
  return self
}

test("a lease that cannot be renewed stops its turn before it lapses", async () => {
  const h = await heldLease("turn-lease")
  try {
    // Renewed in time, the lease outlives its first term and the turn goes on.
    await Bun.sleep(LEASE_MS * 2)
    expect(h.stoppedAt).toBeNull()
    const [row] = (await h.opened.db`SELECT until_ms FROM ai_turns WHERE chat_id = ${h.chatId}`) as {
      until_ms: number
    }[]
    await h.opened.db.close()
    // At the latest one renewal after the last term read (one may have gone through before the close).
    expect(await h.stopped()).toBeLessThan(Number(row?.until_ms) + LEASE_MS / 3)
  } finally {
    await h.lease?.release().catch(() => {})
    await h.opened.close().catch(() => {})
  }
})

test("a lease whose renewals never answer stops its turn once it lapses", async () => {
  const h = await heldLease("turn-lease-hung")
  // A transaction left open: on SQLite every statement outside it waits (sqlite-turns.ts), the
  // renewals too, which neither fail nor answer.
  let finish = () => {}
  const open = h.opened.db.begin(() => new Promise<void>((resolve) => (finish = resolve)))
  try {
    const blockedAt = Date.now()
    expect(await h.stopped()).toBeLessThan(blockedAt + LEASE_MS + LEASE_MS / 3)
  } finally {
    finish()
    await open
    await h.lease?.release()
    await h.opened.close()
  }
})
