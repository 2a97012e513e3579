// A chat's turn lease over a real SQLite store: renewed, it holds past its first term; once it can no
// longer be renewed (the database gone), the turn is stopped before the lease lapses, since another
// replica may then take the chat and run a turn of its own beside it.
import { expect, test } from "bun:test"
import { rm } from "node:fs/promises"
import { openTestStore } from "../../tests/support/store.ts"
import { waitFor } from "../../tests/support/wait.ts"
import { chatStore } from "../adapters/store/chat-store.ts"
import { turnLeaseStore } from "../adapters/store/turn-lease-store.ts"
import { systemClock } from "../domain/ports.ts"
import { createTurnLeases } from "./turn-lease.ts"

const LEASE_MS = 600

test("a lease that cannot be renewed stops its turn before it lapses", async () => {
  const opened = await openTestStore("turn-lease")
  try {
    const chat = await chatStore(opened.db, opened.dialect).createChat({
      ownerSubject: "u",
      ownerName: "u",
      createdAt: new Date().toISOString(),
      model: "m",
      nodeId: null,
      incidentId: null,
    })
    const leases = createTurnLeases({
      store: turnLeaseStore(opened.db, opened.dialect),
      clock: systemClock,
      holder: "replica-a",
      leaseMs: LEASE_MS,
    })
    let stoppedAt: number | null = null
    const held = await leases.take(chat.id, () => {
      stoppedAt ??= Date.now()
    })
    // Renewed in time, the lease outlives its first term and the turn goes on.
    await Bun.sleep(LEASE_MS * 2)
    expect(stoppedAt).toBeNull()
    const [row] = (await opened.db`SELECT until_ms FROM ai_turns WHERE chat_id = ${chat.id}`) as { until_ms: number }[]
    await opened.db.close()
    await waitFor(
      "the turn stopped",
      async () => stoppedAt,
      (at) => at !== null,
      LEASE_MS * 3,
    )
    // At the latest one renewal after the last term read (one may have gone through before the close).
    expect(stoppedAt as unknown as number).toBeLessThan(Number(row?.until_ms) + LEASE_MS / 3)
    held.release().catch(() => {})
  } finally {
    await rm(opened.dir, { recursive: true, force: true })
  }
})

test("a lease whose renewals never answer stops its turn once it lapses", async () => {
  const opened = await openTestStore("turn-lease-hung")
  try {
    const chat = await chatStore(opened.db, opened.dialect).createChat({
      ownerSubject: "u",
      ownerName: "u",
      createdAt: new Date().toISOString(),
      model: "m",
      nodeId: null,
      incidentId: null,
    })
    const leases = createTurnLeases({
      store: turnLeaseStore(opened.db, opened.dialect),
      clock: systemClock,
      holder: "replica-a",
      leaseMs: LEASE_MS,
    })
    let stoppedAt: number | null = null
    const held = await leases.take(chat.id, () => {
      stoppedAt ??= Date.now()
    })
    // A transaction left open: on SQLite every statement outside it waits (sqlite-turns.ts), the
    // renewals too, which neither fail nor answer.
    let finish = () => {}
    const open = opened.db.begin(() => new Promise<void>((resolve) => (finish = resolve)))
    const blockedAt = Date.now()
    await waitFor(
      "the turn stopped",
      async () => stoppedAt,
      (at) => at !== null,
      LEASE_MS * 3,
    )
    expect(stoppedAt as unknown as number).toBeLessThan(blockedAt + LEASE_MS + LEASE_MS / 3)
    finish()
    await open
    await held.release()
  } finally {
    await opened.close()
  }
})
