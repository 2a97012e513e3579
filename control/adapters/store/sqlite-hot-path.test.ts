// The SQLite hot path (a second handle with statements prepared once) must keep every promise of the
// Bun.SQL way it replaces: a heartbeat written while a Bun.SQL transaction holds the write lock still
// lands (through the fallback, without blocking the thread that holds the lock), a revocation committed
// a moment before is seen by the next lookup, and a node back from unreachable is reported once.
import { afterAll, beforeAll, expect, test } from "bun:test"
import type { NodeHealth } from "../../../protocol/agent.ts"
import { openTestStore } from "../../../tests/support/store.ts"
import { hashToken, newToken } from "../../domain/tokens.ts"
import { createAuthStore } from "./auth-store.ts"
import { hotPathOf } from "./sqlite-hot-path.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const health = (nodeId: string, at = new Date().toISOString()): NodeHealth => ({
  nodeId,
  agentVersion: "t",
  hostname: nodeId,
  at,
  uptimeSeconds: 1,
  load: [0, 0, 0],
  memory: { totalBytes: 100, availableBytes: 50 },
  disk: { path: "/", totalBytes: 100, freeBytes: 50 },
  system: { profile: GEN, current: GEN, booted: GEN },
  desired: null,
  phase: "no-desired",
  heartbeatIntervalSeconds: 1,
})

let opened: Awaited<ReturnType<typeof openTestStore>>
const credentials: Record<string, string> = {}

beforeAll(async () => {
  opened = await openTestStore("hot-path")
  const now = new Date().toISOString()
  for (const nodeId of ["a", "b", "c"]) {
    const join = newToken("join")
    credentials[nodeId] = newToken("node")
    await opened.store.createJoinToken({ tokenHash: hashToken(join), nodeId, createdAt: now, expiresAt: "2999-01-01" })
    const enrolled = await opened.store.redeemJoinToken({
      tokenHash: hashToken(join),
      nodeId,
      hostname: nodeId,
      agentVersion: "t",
      credentialHash: hashToken(credentials[nodeId] as string),
      agentChosen: false,
      now,
    })
    expect(enrolled.ok).toBe(true)
  }
})
afterAll(() => opened.close())

test("a file-backed SQLite store has a hot path", () => {
  expect(hotPathOf(opened.db)).not.toBeNull()
})

test("a heartbeat sent while a Bun.SQL transaction holds the write lock is written once the lock is free", async () => {
  let release!: () => void
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  let locked!: () => void
  const isLocked = new Promise<void>((resolve) => {
    locked = resolve
  })
  const tx = opened.db.begin(async (t) => {
    await t`UPDATE nodes SET hostname = 'held' WHERE id = 'c'`
    locked()
    await held
  })
  await isLocked
  const at = new Date(Date.now() + 1000).toISOString()
  const beat = opened.store.recordHeartbeat(health("a", at), at)
  // The batch is tried on the next turns of the loop, the lock still held; it must not block this
  // thread, or the transaction above could never finish.
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
  release()
  await tx
  expect(await beat).toEqual({ wasUnreachable: false, desiredPath: null })
  expect((await opened.store.getNode("a"))?.lastHeartbeat).toBe(at)
})

test("a credential revoked through Bun.SQL is refused by the very next lookup", async () => {
  const auth = createAuthStore(opened.db, opened.dialect)
  const hash = hashToken(credentials.b as string)
  expect((await auth.nodeForCredential(hash, new Date().toISOString()))?.nodeId).toBe("b")
  expect(await auth.revokeNode("b", new Date().toISOString())).toBe(true)
  expect(await auth.nodeForCredential(hash, new Date().toISOString())).toBeNull()
})

test("a node back from unreachable is reported once, by its latest heartbeat of a batch", async () => {
  const now = new Date().toISOString()
  await opened.store.recordHeartbeat(health("c", now), now)
  const marked = await opened.store.markUnreachable(new Date(Date.now() + 60_000).toISOString(), now, 3)
  expect(marked.map((n) => n.id)).toContain("c")
  const later = new Date(Date.now() + 61_000).toISOString()
  // Two heartbeats of one node in the same turn go in one batch.
  const [first, second] = await Promise.all([
    opened.store.recordHeartbeat(health("c", later), later),
    opened.store.recordHeartbeat(health("c", later), later),
  ])
  expect([first?.wasUnreachable, second?.wasUnreachable]).toEqual([false, true])
  expect((await opened.store.getNode("c"))?.unreachable).toBe(false)
  const again = await opened.store.recordHeartbeat(health("c", later), later)
  expect(again.wasUnreachable).toBe(false)
})
