// A deploy through an agent over a real SQLite store: which failures of its looks at the node it waits
// out (the database away: tests/postgres-outage.test.ts) and which end it at once.
import { expect, test } from "bun:test"
import { heartbeatBody } from "../../tests/support/auth.ts"
import { openTestStore } from "../../tests/support/store.ts"
import { createEventBus } from "../adapters/event-bus.ts"
import { createFleet } from "../domain/fleet.ts"
import { systemClock } from "../domain/ports.ts"
import { pullDeploy } from "./pull-deploy.ts"

const GEN2 = "/nix/store/0vkw1m5z0dbd6qn4rjp4ys0d1bzh1gmh-chimera-test-system-2"

test("a look at the node failing with the database reachable ends the deploy at once, not at its deadline", async () => {
  const store = await openTestStore("pull-deploy")
  const stop = new AbortController()
  try {
    const fleet = createFleet({ store: store.store, bus: createEventBus(), clock: systemClock })
    const { token } = await fleet.createJoinToken({ nodeId: "p1" })
    await fleet.enroll(token, { nodeId: "p1", hostname: "p1", agentVersion: "t" })
    await fleet.heartbeat(heartbeatBody("p1"))
    const node = await fleet.findNode("p1")
    if (!node) throw new Error("p1 was not enrolled")
    const deploying = pullDeploy(fleet, node, {
      closure: GEN2,
      dryRun: false,
      force: false,
      timeoutSeconds: 600,
      clock: systemClock,
      signal: stop.signal,
      // Once the closure is desired, the looks that follow fail as a broken schema fails every time (a
      // query of Bun.SQL runs only once asked to).
      onProgress: () => void store.db.unsafe("ALTER TABLE nodes RENAME TO nodes_moved").execute(),
    })
    await expect(deploying).rejects.toThrow("nodes")
  } finally {
    stop.abort()
    await store.close()
  }
}, 5_000)
