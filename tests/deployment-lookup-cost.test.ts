// What naming a deployment id costs. GET /api/deployments/{id} (a viewer) and POST
// /api/deployments/records (an operator) look an id without a record up in the event log, where a deploy
// another replica runs is known only by its events. A made-up id in the deploy format, dated long ago,
// read every deployment.progress event since (one per target and step: 120,000 for one deploy to
// 20,000 nodes), 0.8 s of the event loop per request with a million of them: a viewer at its API limit
// kept the control plane from answering anyone, heartbeats included. Now an id is looked up by its one
// deployment.started event, and only a deploy that started has its progress read.
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { addUser, call, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { cliRecord } from "./support/deployment-record.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"

const PROGRESS_EVENTS = 400_000

/** Another fleet's deploy history: progress events of 400 deploys to 1,000 nodes, from 2025 on. */
function fillEventLog(dbFile: string) {
  const db = new Database(dbFile)
  const insert = db.prepare("INSERT INTO events (type, node_id, at, received_at, data) VALUES (?, ?, ?, ?, ?)")
  db.transaction(() => {
    for (let i = 0; i < PROGRESS_EVENTS; i++) {
      const at = new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString()
      const id = `20250101000000-${(i >> 10).toString(16).padStart(8, "0")}`
      const target = `node-${i % 1000}`
      insert.run(
        "deployment.progress",
        target,
        at,
        at,
        JSON.stringify({ id, target, phase: "copy", message: "copied" }),
      )
    }
  })()
  db.close()
}

async function timed(request: () => Promise<Response>) {
  const t0 = performance.now()
  const res = await request()
  await res.arrayBuffer()
  return { status: res.status, ms: performance.now() - t0 }
}

describe("looking up a deployment id", () => {
  test("a made-up id costs a viewer's GET or an operator's record no scan of the event log", async () => {
    const closure = await buildTestSystem(1, { tag: "lookup-cost" })
    await using cp = await startInProcess()
    await addUser(cp, "vera", "viewer")
    await addUser(cp, "olga", "operator")
    const [viewer, operator] = await Promise.all([login(cp, "vera"), login(cp, "olga")])
    fillEventLog(join(cp.dataDir, "chimera.db"))

    const slowest = { get: 0, record: 0 }
    for (let i = 0; i < 5; i++) {
      const made = `20000101000000-0000000${i}`
      const get = await timed(() => call(cp, viewer, "GET", `/api/deployments/${made}`))
      expect(get.status).toBe(404)
      const recorded = await timed(() =>
        call(
          cp,
          operator,
          "POST",
          "/api/deployments/records",
          cliRecord(`20000101000000-1000000${i}`, closure, [{ target: "elsewhere-1", status: "deployed" }]),
        ),
      )
      expect(recorded.status).toBe(201)
      slowest.get = Math.max(slowest.get, get.ms)
      slowest.record = Math.max(slowest.record, recorded.ms)
    }
    // Each read every progress event (about 300 ms here) before; now a few milliseconds.
    expect(slowest.get).toBeLessThan(80)
    expect(slowest.record).toBeLessThan(80)
  }, 120_000)
})
