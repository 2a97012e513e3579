// A heal's duration is the node's word, and GET /metrics adds every one into the fleet's
// chimera_heal_duration_seconds. One report of 1e308 ms (a valid JSON number) made the sum 1e305
// for as long as the control plane ran: every real heal after it vanished in the rounding, and a
// second such report made it Infinity, so any mean heal time Prometheus computes for the fleet read
// 0 or NaN. A duration is now at most a week (a heal that took longer is not a duration the agent
// measures); past it the report is a 422, and nothing reaches the metrics.
import { expect, test } from "bun:test"
import { call, enrollNode } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { waitFor } from "./support/wait.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const healed = (seq: number, durationMs: number) => ({
  seq,
  at: new Date().toISOString(),
  type: "heal.succeeded",
  data: { desired: GEN, attempt: 1, durationMs },
})

const sumOf = async (cp: { url: string; adminToken: string }) => {
  const text = await (await call(cp, cp.adminToken, "GET", "/metrics")).text()
  const line = text.split("\n").find((l) => l.startsWith('chimera_heal_duration_seconds_sum{outcome="succeeded"}'))
  return Number(line?.split(" ")[1])
}

test("one node's absurd heal durations do not take over the fleet's heal-duration metric", async () => {
  await using cp = await startInProcess()
  const a = await enrollNode(cp, "node-a")
  const b = await enrollNode(cp, "node-b")
  const hostile = await call(cp, a, "POST", "/api/agent/node-a/reports", {
    reports: [healed(1, 1e308), healed(2, 1e308)],
  })
  expect(hostile.status).toBe(422)
  // A week is still a duration.
  const week = 7 * 86_400_000
  expect((await call(cp, a, "POST", "/api/agent/node-a/reports", { reports: [healed(1, week)] })).status).toBe(200)
  expect((await call(cp, b, "POST", "/api/agent/node-b/reports", { reports: [healed(1, 5000)] })).status).toBe(200)
  const sum = await waitFor(
    "both heals counted",
    () => sumOf(cp),
    (s) => s >= week / 1000 + 5,
  )
  expect(sum).toBe(week / 1000 + 5)
})
