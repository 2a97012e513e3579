// A node whose credential rotation is due may ask for a new credential, and each such request is an
// audit row kept for good (the log is append-only and never pruned). Rotation stays due until the
// new credential is first used, and whoever holds a compromised node decides that: it never uses one,
// and every credential older than auth.node_credential_rotation_days (30) is due anyway. With the
// agent budget alone (1,200 requests a minute per node) one node credential wrote 1,200 rows a minute,
// about a gigabyte a day, and buried every admin's action in `chimera audit`. A node now gets a few
// rotated credentials an hour (`rotations`); past them a 429, counted and summarised like every
// refusal, and the agent asks again at a later heartbeat.
import { Database } from "bun:sqlite"
import { expect, test } from "bun:test"
import { join } from "node:path"
import { DEFAULT_LIMITS } from "../control/domain/auth/rate-limiter.ts"
import { call, enrollNode, heartbeatBody } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess } from "./support/control-plane.ts"

const ROUTE = "POST /api/agent/:nodeId/credential"

test("a node with a rotation due cannot write an audit row per request by asking for credentials it never uses", async () => {
  const clock = manualClock(Date.parse("2025-06-01T10:00:00Z"))
  await using cp = await startInProcess({ clock, trust: { rateLimits: DEFAULT_LIMITS } })
  const a = await enrollNode(cp, "node-a")
  const b = await enrollNode(cp, "node-b")
  expect((await call(cp, cp.adminToken, "POST", "/api/nodes/node-a/rotate-credential")).status).toBe(200)
  const db = new Database(join(cp.dataDir, "chimera.db"), { readonly: true })
  const rows = () => (db.query("SELECT count(*) AS n FROM audit_log WHERE action = ?").get(ROUTE) as { n: number }).n
  const before = rows()

  // Within the node's agent budget for the minute, and again for an hour of minutes' worth.
  const statuses: Record<number, number> = {}
  for (let minute = 0; minute < 3; minute++) {
    for (let i = 0; i < 300; i++) {
      const res = await call(cp, a, "POST", "/api/agent/node-a/credential")
      statuses[res.status] = (statuses[res.status] ?? 0) + 1
    }
    clock.advance(61_000)
  }
  const written = rows() - before
  // A handful of credentials issued, and refusals summarised per window: not one row per request.
  expect(statuses[201] ?? 0).toBeLessThanOrEqual(DEFAULT_LIMITS.rotations.limit)
  expect(statuses[201] ?? 0).toBeGreaterThan(0)
  expect(statuses[429] ?? 0).toBe(900 - (statuses[201] ?? 0))
  expect(written).toBeLessThan(DEFAULT_LIMITS.rotations.limit + 10)

  // The node's own rotation still works: a credential issued, used, and the old one stops.
  clock.advance(DEFAULT_LIMITS.rotations.windowMs)
  const issued = await call(cp, a, "POST", "/api/agent/node-a/credential")
  expect(issued.status).toBe(201)
  const fresh = ((await issued.json()) as { credential: string }).credential
  expect((await call(cp, fresh, "POST", "/api/agent/node-a/heartbeat", heartbeatBody("node-a"))).status).toBe(200)
  expect((await call(cp, a, "POST", "/api/agent/node-a/heartbeat", heartbeatBody("node-a"))).status).toBe(401)
  // Another node's budget was never touched.
  expect((await call(cp, cp.adminToken, "POST", "/api/nodes/node-b/rotate-credential")).status).toBe(200)
  expect((await call(cp, b, "POST", "/api/agent/node-b/credential")).status).toBe(201)
  db.close()
})
