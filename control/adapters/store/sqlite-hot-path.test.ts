// The SQLite hot path (a second handle with statements prepared once) must keep every promise of the
// Bun.SQL way it replaces: a heartbeat written while a Bun.SQL transaction holds the write lock still
// lands (through the fallback, without blocking the thread that holds the lock), a revocation committed
// a moment before is seen by the next lookup, and a node back from unreachable is reported once. A
// quiet heartbeat held in memory is read by this process at once, reaches the row within HOLD_MS and
// before the sweep would count the node silent, and is written when the store closes.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { rm } from "node:fs/promises"
import { join } from "node:path"
import type { NodeHealth } from "../../../protocol/agent.ts"
import { heartbeatBody } from "../../../tests/support/auth.ts"
import { openTestStore } from "../../../tests/support/store.ts"
import { hashToken, newToken } from "../../domain/tokens.ts"
import { createAuthStore } from "./auth-store.ts"
import { openDatabase, sqlStore } from "./sql-store.ts"
import { HOLD_MS, hotPathOf } from "./sqlite-hot-path.ts"

/** The test agents' heartbeat, with no desired closure and a 1 s interval. */
const health = (nodeId: string, at = new Date().toISOString()): NodeHealth => ({
  ...heartbeatBody(nodeId),
  at,
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
  const { promise: held, resolve: release } = Promise.withResolvers<void>()
  const { promise: isLocked, resolve: locked } = Promise.withResolvers<void>()
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

const rowOf = async (id: string) =>
  ((await opened.db`SELECT phase, last_heartbeat, health FROM nodes WHERE id = ${id}`) as Record<string, unknown>[])[0]

test("a quiet heartbeat is held: this process reads it at once, the row gets it within HOLD_MS", async () => {
  const t0 = new Date(Date.now() + 100_000).toISOString()
  await opened.store.recordHeartbeat(health("a", t0), t0)
  expect((await rowOf("a"))?.last_heartbeat).toBe(t0)

  const t1 = new Date(Date.now() + 101_000).toISOString()
  const quiet = { ...health("a", t1), uptimeSeconds: 77 }
  expect(await opened.store.recordHeartbeat(quiet, t1)).toEqual({ wasUnreachable: false, desiredPath: null })
  expect((await rowOf("a"))?.last_heartbeat).toBe(t0) // held, not yet written
  const seen = await opened.store.getNode("a")
  expect([seen?.lastHeartbeat, seen?.health?.uptimeSeconds]).toEqual([t1, 77])
  expect((await opened.store.listNodes()).find((n) => n.id === "a")?.lastHeartbeat).toBe(t1)

  const deadline = Date.now() + HOLD_MS * 3
  while ((await rowOf("a"))?.last_heartbeat !== t1 && Date.now() < deadline) await Bun.sleep(50)
  const row = await rowOf("a")
  expect(row?.last_heartbeat).toBe(t1)
  expect(JSON.parse(String(row?.health)).uptimeSeconds).toBe(77)
})

test("a heartbeat long after the last one is still held: only the sweep says a node is silent", async () => {
  const t = new Date(Date.now() + 250_000).toISOString() // 50 s after the last one, at a 1 s interval
  await opened.store.recordHeartbeat(health("a", t), t)
  expect(hotPathOf(opened.db)?.heldBeat("a")?.at).toBe(t)
})

test("a node's first heartbeat after the control plane restarted is written at once", async () => {
  const other = await openTestStore("hot-path-restart")
  try {
    const t0 = Date.now()
    const at = (s: number) => new Date(t0 + s * 1000).toISOString()
    await other.db`INSERT INTO nodes (id, hostname, enrolled_at, agent_version) VALUES ('r', 'r', ${at(0)}, 't')`
    await other.store.recordHeartbeat(health("r", at(-10)), at(-10)) // the first: written
    await other.store.recordHeartbeat(health("r", at(-9.5)), at(-9.5)) // held…
    await other.store.close() // …and written as the store closes
    const reopened = await openDatabase(`sqlite://${join(other.dir, "chimera.db")}`)
    const store = sqlStore(reopened.db, reopened.dialect)
    try {
      // Its row says 9.5 s ago, from before this process's hot path opened: written, not held.
      await store.recordHeartbeat(health("r", at(0.5)), at(0.5))
      expect(hotPathOf(reopened.db)?.heldBeat("r")).toBeUndefined()
      const rows = (await reopened.db`SELECT last_heartbeat FROM nodes WHERE id = 'r'`) as Record<string, unknown>[]
      expect(rows[0]?.last_heartbeat).toBe(at(0.5))
      await store.recordHeartbeat(health("r", at(1)), at(1)) // then held as usual
      expect(hotPathOf(reopened.db)?.heldBeat("r")?.at).toBe(at(1))
    } finally {
      await store.close()
    }
  } finally {
    await rm(other.dir, { recursive: true, force: true })
  }
})

test("beats held one after another stay held while the row's own time falls behind", async () => {
  const t0 = Date.now() + 260_000
  const at = (s: number) => new Date(t0 + s * 1000).toISOString()
  await opened.store.recordHeartbeat(health("a", at(0)), at(0)) // silent before: written
  await opened.store.recordHeartbeat(health("a", at(1.5)), at(1.5)) // held
  // 1 s interval: 3 s after the row's time, but 1.5 s after the last beat taken: held too.
  await opened.store.recordHeartbeat(health("a", at(3)), at(3))
  expect(hotPathOf(opened.db)?.heldBeat("a")?.at).toBe(at(3))
})

test("a heartbeat that changes the node's state is written at once, never held", async () => {
  const t = new Date(Date.now() + 200_000).toISOString()
  await opened.store.recordHeartbeat({ ...health("a", t), phase: "drifted" }, t)
  expect(await rowOf("a")).toMatchObject({ phase: "drifted", last_heartbeat: t })
  expect(hotPathOf(opened.db)?.heldBeat("a")).toBeUndefined()
})

test("the sweep writes a held heartbeat first, so a node beating on time is never marked unreachable", async () => {
  const t0 = Date.now() + 300_000
  const at = (s: number) => new Date(t0 + s * 1000).toISOString()
  const every5s = (s: number) => ({ ...health("a", at(s)), phase: "congruent" as const, heartbeatIntervalSeconds: 5 })
  await opened.store.recordHeartbeat(every5s(0), at(0)) // a change: written
  await opened.store.recordHeartbeat(every5s(8), at(8)) // quiet, within two intervals: held
  expect((await rowOf("a"))?.last_heartbeat).toBe(at(0))
  // 5 s interval, 3 missed: by t0+16 s the row alone says silent since t0, the held beat says 8 s ago.
  const marked = await opened.store.markUnreachable(at(16), at(0), 3)
  expect(marked.map((n) => n.id)).not.toContain("a")
  expect((await rowOf("a"))?.last_heartbeat).toBe(at(8))
  expect(hotPathOf(opened.db)?.heldBeat("a")).toBeUndefined()
})

test("closing the store writes what is held", async () => {
  const other = await openTestStore("hot-path-close")
  try {
    const now = new Date().toISOString()
    await other.db`INSERT INTO nodes (id, hostname, enrolled_at, agent_version) VALUES ('z', 'z', ${now}, 't')`
    const t0 = new Date(Date.now() + 1000).toISOString()
    const t1 = new Date(Date.now() + 2000).toISOString()
    await other.store.recordHeartbeat(health("z", t0), t0)
    await other.store.recordHeartbeat(health("z", t1), t1)
    expect(hotPathOf(other.db)?.heldBeat("z")?.at).toBe(t1)
    await other.store.close()
    const reopened = await openDatabase(`sqlite://${join(other.dir, "chimera.db")}`)
    const rows = (await reopened.db`SELECT last_heartbeat FROM nodes WHERE id = 'z'`) as Record<string, unknown>[]
    expect(rows[0]?.last_heartbeat).toBe(t1)
    await sqlStore(reopened.db, reopened.dialect).close()
  } finally {
    await rm(other.dir, { recursive: true, force: true })
  }
})

test("a node the sweep marks unreachable between its credential lookup and its heartbeat is flipped back by it", async () => {
  const hash = hashToken(newToken("node"))
  const t0 = Date.now() + 400_000
  const at = (s: number) => new Date(t0 + s * 1000).toISOString()
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('u', 'u', ${hash}, ${at(0)}, 't')`
  await opened.store.recordHeartbeat(health("u", at(0)), at(0)) // first: written
  // The request authenticates (its row read with the credential, unreachable = 0)…
  expect((await createAuthStore(opened.db, opened.dialect).nodeForCredential(hash, at(0)))?.nodeId).toBe("u")
  // …the sweep marks the node before its heartbeat is taken…
  expect((await opened.store.markUnreachable(at(60), at(0), 3)).map((n) => n.id)).toContain("u")
  // …and the heartbeat, on time by its own clock, still sees the node unreachable and flips it.
  expect(await opened.store.recordHeartbeat(health("u", at(1)), at(1))).toEqual({
    wasUnreachable: true,
    desiredPath: null,
  })
  expect((await opened.store.getNode("u"))?.unreachable).toBe(false)
})

test("the sweep's first look through the hot path finds exactly the nodes its UPDATE marks", async () => {
  const other = await openTestStore("hot-path-sweep")
  try {
    const t0 = Date.now() + 500_000
    const at = (ms: number) => new Date(t0 + ms).toISOString()
    await other.db`INSERT INTO nodes (id, hostname, enrolled_at, agent_version) VALUES ('s', 's', ${at(0)}, 't')`
    await other.store.recordHeartbeat({ ...health("s", at(0)), heartbeatIntervalSeconds: 5 }, at(0))
    const hot = hotPathOf(other.db)
    // 5 s interval, 3 missed: silent only once more than 15 s have passed since the later of the
    // node's last heartbeat and the control plane's start.
    for (const [nowMs, sinceMs, silent] of [
      [15_000, 0, false],
      [15_001, 0, true],
      [25_000, 10_000, false],
      [25_001, 10_000, true],
    ] as const) {
      expect(hot?.anySilent(t0 + nowMs, t0 + sinceMs, 3)).toBe(silent)
    }
    expect(await other.store.markUnreachable(at(25_000), at(10_000), 3)).toEqual([])
    // A revoked node as silent is not looked for: it cannot heartbeat, and its revocation says why.
    await other.db`INSERT INTO nodes (id, hostname, enrolled_at, agent_version) VALUES ('r', 'r', ${at(0)}, 't')`
    await other.store.recordHeartbeat({ ...health("r", at(0)), heartbeatIntervalSeconds: 5 }, at(0))
    await other.db`UPDATE nodes SET revoked_at = ${at(1)} WHERE id = 'r'`
    expect((await other.store.markUnreachable(at(25_001), at(10_000), 3)).map((n) => n.id)).toEqual(["s"])
    expect(hot?.anySilent(t0 + 60_000, t0, 3)).toBe(false) // marked already, or revoked
  } finally {
    await other.store.close()
    await rm(other.dir, { recursive: true, force: true })
  }
})

test("a revoked node enrolled again counts its silence from the enrolment, not its last heartbeat", async () => {
  const other = await openTestStore("hot-path-reenrol")
  try {
    const t0 = Date.now() + 900_000
    const at = (ms: number) => new Date(t0 + ms).toISOString()
    const enrol = async (ms: number) => {
      const token = newToken("join")
      await other.store.createJoinToken({
        tokenHash: hashToken(token),
        nodeId: "q",
        createdAt: at(ms),
        expiresAt: "2999-01-01",
      })
      const r = await other.store.redeemJoinToken({
        tokenHash: hashToken(token),
        nodeId: "q",
        hostname: "q",
        agentVersion: "t",
        credentialHash: hashToken(newToken("node")),
        agentChosen: false,
        now: at(ms),
      })
      expect(r.ok).toBe(true)
    }
    await enrol(0)
    await other.store.recordHeartbeat({ ...health("q", at(0)), heartbeatIntervalSeconds: 5 }, at(0))
    expect(await createAuthStore(other.db, "sqlite").revokeNode("q", at(1_000))).toBe(true)
    // Enrolled again 100 s on: three 5 s intervals later it is silent, not at once.
    await enrol(100_000)
    expect(await other.store.markUnreachable(at(100_001), at(0), 3)).toEqual([])
    expect((await other.store.markUnreachable(at(115_001), at(0), 3)).map((n) => n.id)).toEqual(["q"])
  } finally {
    await other.store.close()
    await rm(other.dir, { recursive: true, force: true })
  }
})

test("a row read with its credential stands for it until this process changes it", async () => {
  const auth = createAuthStore(opened.db, opened.dialect)
  const hot = hotPathOf(opened.db)
  const credential = newToken("node")
  const hash = hashToken(credential)
  const now = new Date().toISOString()
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('k', 'k', ${hash}, ${now}, 't')`
  const [first] = hot?.credentials([hash]) ?? []
  expect(hot?.credentials([hash])[0]).toBe(first as Record<string, unknown>) // not read again

  // A rotation request, then the rotated credential's first use, through the auth store: seen at once.
  expect((await auth.nodeForCredential(hash, now))?.rotationRequested).toBe(false)
  expect(await auth.requestRotation("k", now)).toBe(true)
  expect((await auth.nodeForCredential(hash, now))?.rotationRequested).toBe(true)
  const rotated = hashToken(newToken("node"))
  expect(await auth.setPendingCredential("k", rotated, hash)).toBe(true)
  expect((await auth.nodeForCredential(hash, now))?.nodeId).toBe("k") // the old one works until the new one is used
  expect((await auth.nodeForCredential(rotated, now))?.nodeId).toBe("k")
  expect(await auth.nodeForCredential(hash, now)).toBeNull()

  // A new desired closure, then a revocation: the next heartbeat and the next lookup see them.
  const at = new Date(Date.now() + 700_000).toISOString()
  await opened.store.recordHeartbeat(health("k", at), at)
  expect((await auth.nodeForCredential(rotated, now))?.nodeId).toBe("k")
  const closure = "/nix/store/0000000000000000000000000000000a-k"
  await opened.store.setDesired("k", closure, { id: "cmd-k", kind: "activate", closure, createdAt: now })
  const later = new Date(Date.now() + 700_500).toISOString()
  expect((await opened.store.recordHeartbeat(health("k", later), later)).desiredPath).toBe(closure)
  expect(await auth.revokeNode("k", now)).toBe(true)
  expect(await auth.nodeForCredential(rotated, now)).toBeNull()
})

test("the answers given without a read (known credential, held heartbeat) are the full ways' answers", async () => {
  const auth = createAuthStore(opened.db, opened.dialect)
  const credential = newToken("node")
  const hash = hashToken(credential)
  const now = new Date().toISOString()
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('v', 'v', ${hash}, ${now}, 't')`
  const agree = async () => {
    const full = await auth.nodeForCredential(hash, now)
    const known = auth.knownNodeCredential?.(hash)
    if (known !== undefined) expect(known).toEqual(full as NonNullable<typeof full>)
    return known
  }
  expect(await agree()).toBeDefined() // kept by the lookup before it
  // Its first heartbeat is written; the next, saying nothing new, is held and answered at once.
  const t1 = new Date(Date.now() + 800_000).toISOString()
  expect(opened.store.holdHeartbeat?.(health("v", t1), t1)).toBeUndefined()
  await opened.store.recordHeartbeat(health("v", t1), t1)
  const t2 = new Date(Date.now() + 800_500).toISOString()
  expect(opened.store.holdHeartbeat?.(health("v", t2), t2)?.desiredPath).toBeNull()
  expect((await opened.store.getNode("v"))?.lastHeartbeat).toBe(t2)
  // A rotation request and a new closure are seen at once by both ways; a revocation ends both.
  expect(await auth.requestRotation("v", now)).toBe(true)
  expect((await agree())?.rotationRequested).toBe(true)
  const closure = "/nix/store/0000000000000000000000000000000b-v"
  await opened.store.setDesired("v", closure, { id: "cmd-v", kind: "activate", closure, createdAt: now })
  const t3 = new Date(Date.now() + 801_000).toISOString()
  expect(opened.store.holdHeartbeat?.(health("v", t3), t3)).toBeUndefined() // its kept row went with the write
  expect((await opened.store.recordHeartbeat(health("v", t3), t3)).desiredPath).toBe(closure)
  expect(await agree()).toBeDefined() // the next request's lookup keeps the row again
  const t4 = new Date(Date.now() + 801_500).toISOString()
  expect(opened.store.holdHeartbeat?.(health("v", t4), t4)?.desiredPath).toBe(closure)
  expect(await auth.revokeNode("v", now)).toBe(true)
  expect(auth.knownNodeCredential?.(hash)).toBeUndefined()
  expect(await agree()).toBeUndefined()
  expect(await auth.nodeForCredential(hash, now)).toBeNull()
})

test("a known row follows its held heartbeats as they are written: the sweep's view of the row", async () => {
  const auth = createAuthStore(opened.db, opened.dialect)
  const hash = hashToken(newToken("node"))
  const t0 = Date.now() + 800_000
  const at = (s: number) => new Date(t0 + s * 1000).toISOString()
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('w', 'w', ${hash}, ${at(0)}, 't')`
  await auth.nodeForCredential(hash, at(0))
  await opened.store.recordHeartbeat(health("w", at(0)), at(0)) // the first: written
  await auth.nodeForCredential(hash, at(1)) // the row as written, known from here on
  await opened.store.recordHeartbeat(health("w", at(1)), at(1)) // quiet: held
  const deadline = Date.now() + HOLD_MS * 3
  while ((await rowOf("w"))?.last_heartbeat !== at(1) && Date.now() < deadline) await Bun.sleep(50)
  expect((await rowOf("w"))?.last_heartbeat).toBe(at(1))
  // The next one is held against the row as written (by the flush), which writeDue goes by.
  await opened.store.recordHeartbeat(health("w", at(2.9)), at(2.9))
  expect((await rowOf("w"))?.last_heartbeat).toBe(at(1))
  expect(hotPathOf(opened.db)?.heldBeat("w")).toMatchObject({ at: at(2.9), writtenMs: Date.parse(at(1)) })
})

test("a full heartbeat write leaves the known row saying what the row says, so the next beat is held", async () => {
  const hot = hotPathOf(opened.db)
  const hash = hashToken(newToken("node"))
  const t0 = Date.now() + 900_000
  const at = (s: number) => new Date(t0 + s * 1000).toISOString()
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('f', 'f', ${hash}, ${at(0)}, 't')`
  await opened.store.recordHeartbeat(health("f", at(0)), at(0))
  const [known] = hot?.credentials([hash]) ?? []
  const drifted = { ...health("f", at(1)), phase: "drifted" as const, hostname: "f2", agentVersion: "t2" }
  await opened.store.recordHeartbeat(drifted, at(1)) // a change: written at once
  expect(hot?.credentials([hash])[0]).toBe(known as Record<string, unknown>) // followed, not read again
  const [row] = (await opened.db`SELECT * FROM nodes WHERE id = 'f'`) as Record<string, unknown>[]
  for (const column of Object.keys(known ?? {}).filter((c) => c !== "row_id"))
    expect([column, known?.[column]]).toEqual([column, row?.[column]])
  await opened.store.recordHeartbeat({ ...drifted, at: at(2) }, at(2))
  expect(hot?.heldBeat("f")?.at).toBe(at(2))
  await opened.store.recordHeartbeat({ ...drifted, at: at(3), phase: "healing" }, at(3))
  expect(hot?.heldBeat("f")).toBeUndefined()
  expect((await rowOf("f"))?.phase).toBe("healing")
})

test("a quiet heartbeat of a known node is held at once, but never overtakes one of its node still in a batch", async () => {
  const auth = createAuthStore(opened.db, opened.dialect)
  const hot = hotPathOf(opened.db)
  const hash = hashToken(newToken("node"))
  const t0 = Date.now() + 1_000_000
  const at = (s: number) => new Date(t0 + s * 1000).toISOString()
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('q', 'q', ${hash}, ${at(0)}, 't')`
  await opened.store.recordHeartbeat(health("q", at(0)), at(0)) // the first: written
  await auth.nodeForCredential(hash, at(0)) // known from here on
  // Held before the call returns: no batch, no turn of the event loop.
  const pending = opened.store.recordHeartbeat(health("q", at(0.5)), at(0.5))
  expect(hot?.heldBeat("q")?.at).toBe(at(0.5))
  await pending
  // A change, then (in the same turn) a beat that is quiet against the row as known: the change is in
  // a batch, so the quiet one joins it, and a batch takes each node's latest beat: the node says that.
  await Promise.all([
    opened.store.recordHeartbeat({ ...health("q", at(1)), phase: "drifted" }, at(1)),
    opened.store.recordHeartbeat(health("q", at(1.5)), at(1.5)),
  ])
  expect(await opened.store.getNode("q")).toMatchObject({ phase: "no-desired", lastHeartbeat: at(1.5) })
})

test("while a write through the other handle changes a node's row, lookups read it and keep nothing", async () => {
  const hot = hotPathOf(opened.db)
  if (!hot) throw new Error("no hot path")
  const hash = hashToken(newToken("node"))
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('g', 'g', ${hash}, ${new Date().toISOString()}, 't')`
  const readTwice = () => [hot.credentials([hash])[0], hot.credentials([hash])[0]]
  const [kept, again] = readTwice()
  expect(again).toBe(kept as Record<string, unknown>)
  // Two writes at once: the row stands again only once both are done.
  const first = hot.changing(["g"])
  const second = hot.changing(["g"])
  expect(hot.knownCredential(hash)).toBeUndefined()
  for (const done of [first, second]) {
    const [a, b] = readTwice()
    expect(a?.id).toBe("g")
    expect(b).not.toBe(a as Record<string, unknown>) // read from the database each time
    done()
  }
  const [a, b] = readTwice()
  expect(b).toBe(a as Record<string, unknown>)
})

test("from a new desired closure's commit on, a known node's heartbeat is answered with it", async () => {
  const hot = hotPathOf(opened.db)
  if (!hot) throw new Error("no hot path")
  const hash = hashToken(newToken("node"))
  await opened.db`INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version) VALUES ('n', 'n', ${hash}, ${new Date().toISOString()}, 't')`
  const kept = hot.credentials([hash])[0]
  expect(hot.knownCredential(hash)).toBe(kept as Record<string, unknown>)
  const closure = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-2"
  const command = { id: "c-n", kind: "activate" as const, closure, createdAt: new Date().toISOString() }
  const setting = opened.store.setDesired("n", closure, command)
  // The kept row says the old closure: it stops standing before the transaction commits, not after.
  expect(hot.knownCredential(hash)).toBeUndefined()
  await setting
  expect(hot.credentials([hash])[0]?.desired_path).toBe(closure)
  const at = new Date().toISOString()
  expect(await opened.store.recordHeartbeat(health("n", at), at)).toEqual({
    wasUnreachable: false,
    desiredPath: closure,
  })
})

test("from a re-enrolment's commit on, the node's old credential is refused", async () => {
  const hot = hotPathOf(opened.db)
  if (!hot) throw new Error("no hot path")
  /** Enrols node r with `credential`; says whether `first` was still known while the enrolment ran. */
  const enrol = async (credential: string) => {
    const join = newToken("join")
    const now = new Date().toISOString()
    await opened.store.createJoinToken({
      tokenHash: hashToken(join),
      nodeId: "r",
      createdAt: now,
      expiresAt: "2999-01-01",
    })
    const redeemed = opened.store.redeemJoinToken({
      tokenHash: hashToken(join),
      nodeId: "r",
      hostname: "r",
      agentVersion: "t",
      credentialHash: hashToken(credential),
      agentChosen: true,
      now,
    })
    const knownDuring = hot.knownCredential(hashToken(first))
    return { ok: (await redeemed).ok, knownDuring }
  }
  const first = newToken("node")
  expect((await enrol(first)).ok).toBe(true)
  expect(hot.credentials([hashToken(first)])[0]?.id).toBe("r")
  const second = newToken("node")
  const again = await enrol(second)
  // The kept row with the old credential stops standing before the re-enrolment commits.
  expect(again.knownDuring).toBeUndefined()
  expect(again.ok).toBe(true)
  expect(hot.credentials([hashToken(first)])[0]).toBeUndefined()
  expect(hot.credentials([hashToken(second)])[0]?.id).toBe("r")
})
