// On SQLite every request shares Bun.SQL's one connection (sqlite-turns.ts). A write that a request
// makes while another request's transaction is open must not join that transaction: it stays when the
// transaction rolls back, and a read then sees the transaction committed, never half done. A statement
// issued on the handle from inside a transaction's callback runs in it at once, not after it.
import { afterAll, beforeAll, expect, test } from "bun:test"
import type { AgentCommand } from "../../../protocol/agent.ts"
import { openTestStore } from "../../../tests/support/store.ts"

const now = new Date().toISOString()
const closure = "/nix/store/0000000000000000000000000000000a-nixos-system-n"

let opened: Awaited<ReturnType<typeof openTestStore>>
beforeAll(async () => {
  opened = await openTestStore("sqlite-turns")
  await opened.db`INSERT INTO nodes (id, hostname, enrolled_at, agent_version) VALUES ('n', 'n', ${now}, 't')`
})
afterAll(() => opened.close())

test("an ack and an event written while another request's transaction rolls back are kept", async () => {
  const { store } = opened
  const run: AgentCommand = { id: "c1", kind: "run", command: "true", timeoutSeconds: 60, createdAt: now }
  await store.enqueueCommands([{ nodeId: "n", command: run }])
  // A new desired closure whose command reuses c1's id fails on its last statement, and rolls back.
  const activate: AgentCommand = { id: "c1", kind: "activate", closure, createdAt: now }
  const failing = store.setDesired("n", closure, activate)
  const acked = store.ackCommand("n", "c1", true, "done", now)
  const event = store.appendEvent({ type: "command.acked", nodeId: "n", at: now, data: { commandId: "c1" } })
  await expect(failing).rejects.toThrow("UNIQUE")
  expect(await acked).toEqual({ kind: "run", cancelled: false })
  const stored = await event

  expect((await store.getNode("n"))?.desiredPath).toBeNull()
  expect((await store.commandResults(["c1"])).map((r) => [r.id, r.success, r.output])).toEqual([["c1", true, "done"]])
  expect((await store.listEvents({ afterId: stored.id - 1, limit: 10 })).map((e) => e.id)).toEqual([stored.id])
})

test("a read issued while a transaction is open sees it once committed, not half done", async () => {
  const { promise: inside, resolve: entered } = Promise.withResolvers<void>()
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const tx = opened.db.begin(async (t) => {
    await t`UPDATE nodes SET hostname = 'half' WHERE id = 'n'`
    entered()
    await released
    await t`UPDATE nodes SET hostname = 'whole' WHERE id = 'n'`
  })
  await inside
  const read = opened.store.getNode("n")
  release()
  await tx
  expect((await read)?.hostname).toBe("whole")
})

test("a statement on the handle inside a transaction's callback runs in that transaction at once", async () => {
  const seen = await opened.db.begin(async (t) => {
    await t`UPDATE nodes SET hostname = 'inside' WHERE id = 'n'`
    const rows = (await opened.db`SELECT hostname FROM nodes WHERE id = 'n'`) as { hostname: string }[]
    return rows[0]?.hostname
  })
  expect(seen).toBe("inside")
})

test("a statement started with execute() while a transaction is open waits for it too", async () => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const failing = opened.db.begin(async (t) => {
    await t`UPDATE nodes SET hostname = 'doomed' WHERE id = 'n'`
    await released
    throw new Error("rolled back on purpose")
  })
  await Bun.sleep(10)
  const started = opened.db`UPDATE nodes SET hostname = 'kept' WHERE id = 'n'`.execute()
  release()
  await expect(failing).rejects.toThrow("rolled back on purpose")
  await started
  expect((await opened.store.getNode("n"))?.hostname).toBe("kept")
})
