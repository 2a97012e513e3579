// The command long poll over a real SQLite store: however a wait ends, it ends at once and leaves
// the next wait of the same node working.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { heartbeatBody } from "../../tests/support/auth.ts"
import { openTestStore } from "../../tests/support/store.ts"
import { createEventBus } from "../adapters/event-bus.ts"
import { createFleet, type Fleet, MAX_POLLS_PER_NODE } from "./fleet.ts"
import { systemClock } from "./ports.ts"

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const GEN2 = "/nix/store/0vkw1m5z0dbd6qn4rjp4ys0d1bzh1gmh-chimera-test-system-2"
/** Far longer than any test here may take: a wait that runs its course fails the test's timeout. */
const FOREVER_MS = 60_000

let opened: Awaited<ReturnType<typeof openTestStore>>
let fleet: Fleet
let credential: string

beforeAll(async () => {
  opened = await openTestStore("fleet")
  fleet = createFleet({ store: opened.store, bus: createEventBus(), clock: systemClock })
  const { token } = await fleet.createJoinToken({ nodeId: "n1" })
  const enrolled = await fleet.enroll(token, { nodeId: "n1", hostname: "n1", agentVersion: "t" })
  credential = enrolled.credential ?? ""
})

afterAll(() => opened.close())

describe("command long poll", () => {
  test("a caller that has already left gets the answer at once, without waiting", async () => {
    const gone = AbortSignal.abort()
    expect(await fleet.commandsFor("n1", credential, FOREVER_MS, gone)).toEqual({ commands: [] })
  }, 5_000)

  test("a caller leaving mid-wait ends it; the next wait is still woken by a new command", async () => {
    const leaving = new AbortController()
    const first = fleet.commandsFor("n1", credential, FOREVER_MS, leaving.signal)
    await Bun.sleep(20)
    leaving.abort()
    expect(await first).toEqual({ commands: [] })

    const second = fleet.commandsFor("n1", credential, FOREVER_MS, new AbortController().signal)
    await Bun.sleep(20)
    await fleet.setDesired("n1", GEN1)
    const [command] = (await second).commands
    expect(command).toMatchObject({ kind: "activate", closure: GEN1 })
  }, 5_000)
})

test("a node holding more long polls than the cap has its oldest answered at once; the newest still wait", async () => {
  const polls = Array.from({ length: MAX_POLLS_PER_NODE + 2 }, () => {
    let settled = false
    const answer = fleet.commandsFor("n1", credential, FOREVER_MS, new AbortController().signal)
    void answer.then(() => {
      settled = true
    })
    return { answer, settled: () => settled }
  })
  await Promise.all([polls[0]?.answer, polls[1]?.answer])
  await Bun.sleep(20)
  expect(polls.map((p) => p.settled())).toEqual([true, true, ...Array(MAX_POLLS_PER_NODE).fill(false)])

  // Those still waiting are woken by a command as before; it is handed out once.
  await fleet.setDesired("n1", GEN2)
  const answers = (await Promise.all(polls.slice(2).map((p) => p.answer))).flatMap((a) => a.commands)
  expect(answers).toMatchObject([{ kind: "activate", closure: GEN2 }])
}, 5_000)

// Silence is counted again from a sweep that failed because the database could not be reached (every
// heartbeat was refused meanwhile). A sweep failing for any other reason took nothing from the nodes:
// a dead node must not be given three more intervals by it, or by each of such failures in a row.
test("a sweep that fails with the database reachable leaves a silent node's silence counted as before", async () => {
  const store = await openTestStore("fleet-sweep")
  try {
    let at = Date.parse("2026-01-01T00:00:00Z")
    const clock = { now: () => new Date(at) }
    const swept = createFleet({ store: store.store, bus: createEventBus(), clock })
    const { token } = await swept.createJoinToken({ nodeId: "quiet" })
    await swept.enroll(token, { nodeId: "quiet", hostname: "quiet", agentVersion: "t" })
    await swept.heartbeat({ ...heartbeatBody("quiet"), at: new Date(at).toISOString(), heartbeatIntervalSeconds: 5 })
    // Three intervals and a second later, the sweep's UPDATE is refused by the database itself.
    at += 16_000
    await store.db.unsafe(
      "CREATE TRIGGER sweep_refused BEFORE UPDATE OF unreachable ON nodes BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    await expect(swept.sweepUnreachable()).rejects.toThrow("refused")
    await store.db.unsafe("DROP TRIGGER sweep_refused")
    at += 1000
    expect(await swept.sweepUnreachable()).toBe(1)
  } finally {
    await store.close()
  }
})
