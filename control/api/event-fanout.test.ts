import { describe, expect, test } from "bun:test"
import { createEventBus } from "../adapters/event-bus.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { FleetEvent } from "../domain/events.ts"
import { createEventFanout, encodeFrame } from "./event-fanout.ts"

const big = (id: number): FleetEvent => ({
  id,
  type: "heal.failed",
  nodeId: "n1",
  at: new Date(0).toISOString(),
  data: { output: "x".repeat(64 * 1024) },
})

describe("event fan-out", () => {
  test("each event is encoded once: every stream is handed the same bytes", () => {
    const bus = createEventBus()
    const fanout = createEventFanout(bus, {
      perUser: 10,
      total: 10,
      pendingBytes: 1024 * 1024,
      liveBytesPerSecond: 1e12,
    })
    const a = fanout.open("alice", () => true)
    const b = fanout.open("bob", () => true)
    bus.publish([big(1)])
    const [fa] = a.take(1e9)
    const [fb] = b.take(1e9)
    expect(fa?.bytes).toBe(fb?.bytes as Uint8Array)
    expect(new TextDecoder().decode(fa?.bytes).startsWith("id: 1\nevent: heal.failed\ndata: {")).toBe(true)
  })

  test("a stream whose client reads nothing holds at most its bound, then falls behind and holds nothing", () => {
    const bus = createEventBus()
    const fanout = createEventFanout(bus, {
      perUser: 10,
      total: 10,
      pendingBytes: 256 * 1024,
      liveBytesPerSecond: 1e12,
    })
    const stalled = fanout.open("viewer", () => true)
    for (let id = 1; id <= 3000; id++) {
      bus.publish([big(id)])
      expect(fanout.stats().pendingBytes).toBeLessThanOrEqual(256 * 1024)
    }
    expect(stalled.behind).toBe(true)
    expect(stalled.take(1e9)).toEqual([])
    // Once it has caught up from the store it is handed live frames again.
    stalled.caughtUp()
    bus.publish([big(3001)])
    bus.publish([big(3002)])
    // A take hands out a bounded share (at least one frame); the rest waits for the next.
    expect(stalled.take(1).map((f) => f.event.id)).toEqual([3001])
    expect(stalled.take(1e9).map((f) => f.event.id)).toEqual([3002])
  })

  test("streams are capped per owner and in total; a closed stream frees its slot", () => {
    const bus = createEventBus()
    const fanout = createEventFanout(bus, { perUser: 2, total: 3, pendingBytes: 1024, liveBytesPerSecond: 1e12 })
    const first = fanout.open("alice", () => true)
    fanout.open("alice", () => true)
    const refused = (owner: string) => {
      try {
        fanout.open(owner, () => true)
      } catch (error) {
        return error instanceof ChimeraError ? `${error.code}: ${error.message}` : String(error)
      }
      return "opened"
    }
    expect(refused("alice")).toContain("RESOURCE_EXHAUSTED: you already have 2 event streams open")
    fanout.open("bob", () => true)
    expect(refused("carol")).toContain("already serves 3 event streams")
    first.close()
    first.close()
    expect(refused("carol")).toBe("opened")
    expect(fanout.stats().streams).toBe(3)
  })

  test("past the live byte rate of all streams together, streams fall behind instead of being handed more", () => {
    const bus = createEventBus()
    const frameBytes = encodeFrame(big(1)).length
    // Room for three frames a second across all streams: the first event reaches both, the second only
    // the first stream; the other falls behind, dropping what it held (the store has it).
    const fanout = createEventFanout(bus, {
      perUser: 10,
      total: 10,
      pendingBytes: 1e9,
      liveBytesPerSecond: frameBytes * 3,
    })
    const streams = [fanout.open("a", () => true), fanout.open("b", () => true)]
    bus.publish([big(1), big(2)])
    expect(streams.map((s) => s.take(1e9).map((f) => f.event.id))).toEqual([[1, 2], []])
    expect(streams.map((s) => s.behind)).toEqual([false, true])
  })
})
