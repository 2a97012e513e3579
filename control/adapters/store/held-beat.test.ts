// A held heartbeat keeps numbers, not text: what it writes and shows must be exactly what the full
// write of the same heartbeat writes (heartbeatValues), and a quiet heartbeat must be found by the
// same columns a full write sets.
import { expect, test } from "bun:test"
import type { NodeHealth } from "../../../protocol/agent.ts"
import { heartbeatBody } from "../../../tests/support/auth.ts"
import { HEARTBEAT_COLUMNS, heartbeatValues, STATE_OF } from "./heartbeat-row.ts"
import { HeldBeat } from "./held-beat.ts"

const beat = (over: Partial<NodeHealth> = {}): NodeHealth => ({
  ...heartbeatBody("web-1"),
  uptimeSeconds: 1234.5,
  load: [0.25, 0.5, 1e-7],
  memory: { totalBytes: 8_000_000_000, availableBytes: 6_000_000_001 },
  disk: { path: "/var/lib/data", totalBytes: 2 ** 53 - 1, freeBytes: 0 },
  ...over,
})

test("a held heartbeat writes the health text and time a full write of it would", () => {
  const receivedAt = new Date(Date.UTC(2026, 11, 6, 12, 0, 0, 7)).toISOString()
  const h = beat()
  const values = heartbeatValues({ h, receivedAt })
  const held = new HeldBeat("web-1", 1, 1, Date.parse(receivedAt), 0, 2, h, undefined)
  expect(held.health).toBe(values[HEARTBEAT_COLUMNS.indexOf("health")] as string)
  expect(held.at).toBe(receivedAt)
  expect(held.ms).toBe(values[HEARTBEAT_COLUMNS.indexOf("last_heartbeat_ms")] as number)
  expect(JSON.parse(held.health)).toEqual({
    uptimeSeconds: h.uptimeSeconds,
    load: h.load,
    memory: h.memory,
    disk: h.disk,
  })
})

test("a held heartbeat's disk path is its own heartbeat's, the same as before or not", () => {
  const first = new HeldBeat("web-1", 1, 1, 1, 0, 2, beat(), undefined)
  const same = new HeldBeat(
    "web-1",
    1,
    1,
    2,
    0,
    2,
    beat({ disk: { path: "/var/lib/data", totalBytes: 1, freeBytes: 1 } }),
    first,
  )
  expect(same.diskPath).toBe(first.diskPath)
  expect(JSON.parse(same.health).disk).toEqual({ path: "/var/lib/data", totalBytes: 1, freeBytes: 1 })
  const moved = new HeldBeat("web-1", 1, 1, 3, 0, 2, beat({ disk: { path: "/", totalBytes: 1, freeBytes: 1 } }), same)
  expect(JSON.parse(moved.health).disk.path).toBe("/")
})

test("the state a quiet heartbeat is judged by is every column a full write sets but its time and figures", () => {
  const h = beat({ desired: "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-2" })
  const values = heartbeatValues({ h, receivedAt: new Date().toISOString() })
  const judged = STATE_OF.map(([column]) => column)
  expect([...judged, "health", "last_heartbeat", "last_heartbeat_ms"].sort()).toEqual([...HEARTBEAT_COLUMNS].sort())
  for (const [column, of] of STATE_OF) expect(of(h)).toBe(values[HEARTBEAT_COLUMNS.indexOf(column)] as never)
})
