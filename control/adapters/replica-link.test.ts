// The replica link and the events it carries, against a real PostgreSQL: ids survive the trip in
// runs, a replica ignores its own notifications, a dropped listening connection comes back by itself
// and says so, and a catch-up hands on what was stored meanwhile exactly once.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { SQL } from "bun"
import { startPostgres, type TestPostgres } from "../../tests/support/postgres.ts"
import { waitFor } from "../../tests/support/wait.ts"
import type { FleetEvent } from "../domain/events.ts"
import { createEventBus } from "./event-bus.ts"
import { replicaEvents } from "./replica-events.ts"
import { decodeIds, encodeIds, linkReplicas, MAX_IDS, type ReplicaHandlers } from "./replica-link.ts"
import { sqlStore } from "./store/sql-store.ts"

setDefaultTimeout(60_000)

let pg: TestPostgres
beforeAll(async () => {
  pg = await startPostgres()
})
afterAll(async () => {
  await pg?.stop()
})

const recorder = () => {
  const seen = {
    nodes: [] as string[],
    events: [] as number[],
    acks: [] as string[],
    turns: [] as number[],
    followed: [] as number[],
    reconnected: 0,
  }
  const handlers: ReplicaHandlers = {
    nodes: (ids) => seen.nodes.push(...ids),
    events: (ids) => seen.events.push(...ids),
    acks: (ids) => seen.acks.push(...ids),
    turnsCancelled: (ids) => seen.turns.push(...ids),
    turnEvents: (ids) => seen.followed.push(...ids),
    reconnected: () => seen.reconnected++,
  }
  return { seen, handlers }
}

describe("replica link", () => {
  test("event ids travel as runs, and text that is not ids decodes to nothing", () => {
    expect(encodeIds([5, 3, 4, 9, 10, 12, 3])).toEqual(["3-5", "9-10", "12"])
    expect(decodeIds("3-5,9-10,12")).toEqual([3, 4, 5, 9, 10, 12])
    expect(decodeIds("x,-1,1e9,5-2,;DROP")).toEqual([])
    // A run is capped, so a forged notification cannot make a huge list.
    expect(decodeIds("1-999999999999").length).toBe(MAX_IDS)
    // So is a whole notification: 8000 bytes of long runs once named over four million ids.
    const forged = Array.from({ length: 400 }, (_, i) => `${i * 1e9}-${i * 1e9 + 999_999}`).join(",")
    expect(decodeIds(forged).length).toBe(MAX_IDS)
    // The sender splits its runs to fit, so a long run of its own still arrives whole.
    const long = Array.from({ length: 25_000 }, (_, i) => i + 1)
    expect(encodeIds(long).flatMap((run) => decodeIds(run))).toEqual(long)
  })

  test("one replica's notifications reach the other, not itself; a dropped connection comes back and says so", async () => {
    const url = await pg.database("link")
    const dbA = new SQL(url)
    const dbB = new SQL(url)
    const a = recorder()
    const b = recorder()
    const linkA = await linkReplicas(dbA, a.handlers)
    const linkB = await linkReplicas(dbB, b.handlers)
    try {
      linkA.commandsQueued(["n1", "n2"])
      linkA.eventsStored([7, 8, 9])
      linkA.commandsAcked(["c1"])
      linkA.turnsCancelled([42])
      linkA.turnEvents([43])
      await waitFor(
        "B told",
        async () => b.seen,
        (s) =>
          s.nodes.length === 2 &&
          s.events.length === 3 &&
          s.acks.length === 1 &&
          s.turns.length === 1 &&
          s.followed.length === 1,
      )
      expect(b.seen).toMatchObject({
        nodes: ["n1", "n2"],
        events: [7, 8, 9],
        acks: ["c1"],
        turns: [42],
        followed: [43],
      })
      expect(a.seen).toMatchObject({ nodes: [], events: [], acks: [], turns: [], followed: [] })

      // 25,000 events stored in one turn: several notifications of at most MAX_IDS ids, none lost.
      linkA.eventsStored(Array.from({ length: 25_000 }, (_, i) => 100 + i))
      await waitFor(
        "all 25,000 event ids",
        async () => b.seen.events.length,
        (n) => n === 3 + 25_000,
      )
      expect(new Set(b.seen.events).size).toBe(3 + 25_000)

      // Many ids in one turn: split over several notifications under PostgreSQL's 8000 bytes, none lost.
      const many = Array.from({ length: 3000 }, (_, i) => `node-${i}`)
      linkA.commandsQueued(many)
      await waitFor(
        "all of many",
        async () => b.seen.nodes.length,
        (n) => n === 2 + many.length,
      )

      // The listening connections dropped (a database restart, a network cut): Bun.SQL listens again.
      await dbA`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()`
      await waitFor(
        "B listening again",
        async () => b.seen.reconnected,
        (n) => n >= 1,
      )
      linkA.commandsQueued(["after"])
      await waitFor(
        "told after the drop",
        async () => b.seen.nodes.at(-1),
        (n) => n === "after",
      )
    } finally {
      await linkA.close()
      await linkB.close()
      await dbA.close()
      await dbB.close()
    }
  })

  test("a notification naming events stored before this replica started replays none of them", async () => {
    const url = await pg.database("replay")
    const db = new SQL(url)
    const store = sqlStore(db, "postgres")
    await store.migrate()
    try {
      const at = new Date().toISOString()
      const old: FleetEvent[] = []
      for (let i = 0; i < 5; i++)
        old.push(await store.appendEvent({ type: "node.enrolled", nodeId: `o${i}`, at, data: {} }))
      const events = await replicaEvents(db, createEventBus(), () => {})
      const got: FleetEvent[] = []
      events.streams.subscribe((e) => got.push(e))
      // Any role that may connect may NOTIFY: it names the old events, as if just stored.
      const link = await linkReplicas(db, { ...recorder().handlers, events: (ids) => void events.stored(ids) })
      const forger = new SQL(url)
      try {
        await forger.notify("chimera_replicas", `forger e ${old[0]?.id}-${old.at(-1)?.id}`)
        const fresh = await store.appendEvent({ type: "node.enrolled", nodeId: "new", at, data: {} })
        await forger.notify("chimera_replicas", `forger e ${fresh.id}`)
        await waitFor(
          "the new event streamed",
          async () => got.map((e) => e.id),
          (ids) => ids.includes(fresh.id),
        )
        expect(got.map((e) => e.nodeId)).toEqual(["new"])
      } finally {
        await link.close()
        await forger.close()
        events.close()
      }
    } finally {
      await db.close()
    }
  })

  test("a catch-up hands on the events stored while not listening, each once", async () => {
    const url = await pg.database("catch_up")
    const db = new SQL(url)
    const store = sqlStore(db, "postgres")
    await store.migrate()
    try {
      const local = createEventBus()
      const told: number[] = []
      const events = await replicaEvents(db, local, (ids) => told.push(...ids))
      const got: FleetEvent[] = []
      events.streams.subscribe((e) => got.push(e))
      const at = new Date().toISOString()
      // This replica's own event: handed on and told to the others.
      const own = await store.appendEvent({ type: "node.enrolled", nodeId: "n", at, data: {} })
      local.publish([own])
      expect(told).toEqual([own.id])
      // Another replica's, notified: read from the store.
      const other = await store.appendEvent({ type: "node.enrolled", nodeId: "m", at, data: {} })
      await events.stored([other.id, other.id, own.id])
      // Stored while this replica was not listening: only a catch-up finds them.
      const missed = [
        await store.appendEvent({ type: "node.enrolled", nodeId: "x", at, data: {} }),
        await store.appendEvent({ type: "node.enrolled", nodeId: "y", at, data: {} }),
      ]
      await events.catchUp()
      await events.catchUp()
      expect(got.map((e) => e.id)).toEqual([own.id, other.id, ...missed.map((e) => e.id)])
      events.close()
    } finally {
      await db.close()
    }
  })
})
