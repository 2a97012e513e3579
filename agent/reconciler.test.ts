// The links a check read and the phase it reached are seen together: a heartbeat or a metrics scrape
// that lands while a check is between its reads never pairs the new links with the old phase.
// Real Nix systems and real links; the store check is held open to stand in that gap.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createBackoff } from "./backoff.ts"
import { createNixSystem, type NixSystem } from "./nix-system.ts"
import { createReconciler, type ReconcilerDeps, type ToldDrift } from "./reconciler.ts"
import type { ReportInput } from "./spool.ts"

setDefaultTimeout(60_000)

let dir: string
let gen1: StorePath
let gen2: StorePath
let gen3: StorePath
beforeAll(async () => {
  ;[gen1, gen2, gen3] = await Promise.all([buildTestSystem(1), buildTestSystem(2), buildTestSystem(3)])
  dir = await mkdtemp(join(tmpdir(), "chimera-reconciler-"))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

async function pointAll(to: StorePath) {
  for (const name of ["system", "current-system", "booted-system"]) await repoint(name, to)
}

const nixOf = () =>
  createNixSystem({
    systemProfile: join(dir, "system"),
    currentSystem: join(dir, "current-system"),
    bootedSystem: join(dir, "booted-system"),
  })

async function repoint(name: string, to: StorePath) {
  await rm(join(dir, name), { force: true })
  await symlink(to, join(dir, name))
}

/**
 * The real link reads, with heal steps that move the links in `dir` as NixOS's would: a test must
 * never run a real switch-to-configuration, which writes the host's /run/current-system.
 */
function healingNix(over: Partial<NixSystem> = {}) {
  const switched: StorePath[] = []
  const nix: NixSystem = {
    ...nixOf(),
    realise: async () => ({ code: 0, output: "" }),
    async setProfile(closure) {
      await repoint("system", closure)
      return { code: 0, output: "" }
    },
    async switchTo(closure) {
      switched.push(closure)
      await repoint("current-system", closure)
      return { code: 0, output: "" }
    },
    ...over,
  }
  return { nix, switched }
}

/**
 * `healingNix` whose first switch fails with `refusal`; when `movesAnyway`, it points the links at the
 * closure first (NixOS switches, then exits non-zero for a unit that failed to start).
 */
function refusingFirstSwitch(refusal: { code: number; output: string }, movesAnyway = false) {
  const healing = healingNix()
  const moveCurrent = healing.nix.switchTo
  let refusals = 1
  healing.nix.switchTo = async (closure) => {
    if (refusals-- <= 0) return moveCurrent(closure)
    if (movesAnyway) await moveCurrent(closure)
    return refusal
  }
  return healing
}

/**
 * A reconciler on `nix` that wants generation 1 with auto-heal off unless `over` says otherwise;
 * `reports` and `phases` fill as it reports and as its checks end.
 */
function reconcilerOn(nix: NixSystem, over: Partial<ReconcilerDeps> = {}) {
  const reports: ReportInput[] = []
  const phases: string[] = []
  const reconciler = createReconciler({
    nix,
    report: (r) => reports.push(r),
    persistDesired() {},
    autoHeal: false,
    initialDesired: gen1,
    onPhase: (phase) => phases.push(phase),
    ...over,
  })
  return { reconciler, reports, phases }
}

test("a check publishes its links with its phase, never the links before the phase", async () => {
  await pointAll(gen2)
  const real = nixOf()
  let hold: Promise<void> | null = null
  let reached = () => {}
  const nix = {
    ...real,
    async inStore(closure: StorePath) {
      reached()
      if (hold) await hold
      return real.inStore(closure)
    },
  }
  const { reconciler, phases } = reconcilerOn(nix)
  reconciler.start()
  try {
    while (phases.length === 0) await Bun.sleep(5)
    expect(reconciler.phase).toBe("drifted")
    expect(reconciler.links.current).toBe(gen2)

    // The node now runs its desired closure; the next check reads that, then waits on the store.
    let release = () => {}
    hold = new Promise((resolve) => (release = resolve))
    const atGap = new Promise<void>((resolve) => (reached = resolve))
    await pointAll(gen1)
    reconciler.request()
    await atGap
    expect({ phase: reconciler.phase, current: reconciler.links.current }).toEqual({ phase: "drifted", current: gen2 })
    release()
    while (phases.length < 2) await Bun.sleep(5)
    expect({ phase: reconciler.phase, current: reconciler.links.current }).toEqual({
      phase: "congruent",
      current: gen1,
    })
  } finally {
    reconciler.stop()
  }
})

test("drift.resolved reports the system the check read, the one that resolved it", async () => {
  await pointAll(gen2)
  const { reconciler, reports, phases } = reconcilerOn(nixOf())
  reconciler.start()
  try {
    while (phases.length === 0) await Bun.sleep(5)
    await pointAll(gen1)
    reconciler.request()
    while (!reports.some((r) => r.type === "drift.resolved")) await Bun.sleep(5)
    const resolved = reports.find((r) => r.type === "drift.resolved")
    expect(resolved?.data.system).toEqual({ profile: gen1, current: gen1, booted: gen1 })
  } finally {
    reconciler.stop()
  }
})

// `chimera rollback` switches the node back under a hold and then makes that closure the desired one,
// which queues an `activate`. One arriving while a check of the old desired closure is between its
// reads must not lend that check its force: the check would heal the rollback away, past the hold.
test("an activate arriving mid-check forces its own closure, not the one the check began with", async () => {
  await pointAll(gen1)
  await mkdir(join(dir, "chimera"), { recursive: true })
  await writeFile(join(dir, "chimera/deploy-hold"), `${Math.floor(Date.now() / 1000) + 60} rollback-1\n`)
  const real = nixOf()
  let hold: Promise<void> | null = null
  let reached = () => {}
  const { nix, switched } = healingNix({
    async inStore(closure: StorePath) {
      reached()
      if (hold) await hold
      return real.inStore(closure)
    },
  })
  // The agent still wants generation 2: the rollback has not been published yet.
  const { reconciler, reports, phases } = reconcilerOn(nix, {
    autoHeal: true,
    initialDesired: gen2,
  })
  reconciler.start()
  try {
    while (phases.length === 0) await Bun.sleep(5)
    expect(reconciler.phase).toBe("drifted")

    let release = () => {}
    hold = new Promise((resolve) => (release = resolve))
    const atGap = new Promise<void>((resolve) => (reached = resolve))
    reconciler.request()
    await atGap
    const activated = reconciler.activate(gen1)
    release()
    hold = null
    expect(await activated).toMatchObject({ success: true })
    while (reconciler.phase !== "congruent") await Bun.sleep(5)
    expect({ switched, reports, current: reconciler.links.current }).toEqual({
      switched: [],
      reports: [],
      current: gen1,
    })
  } finally {
    reconciler.stop()
    await rm(join(dir, "chimera"), { recursive: true, force: true })
  }
})

// A heal can take minutes (a realise, a slow switch); a heartbeat may change the desired closure
// meanwhile. What the heal of the closure it replaced ends with belongs to that closure: its failure
// must not start the new closure's backoff, nor show the new closure as heal-failed.
test("a heal that fails after the desired closure changed holds back neither the new closure nor its phase", async () => {
  await pointAll(gen1)
  const { promise: failed, resolve: fail } = Promise.withResolvers<void>()
  const { promise: atSwitch, resolve: reached } = Promise.withResolvers<void>()
  const { nix, switched } = healingNix()
  const moveCurrent = nix.switchTo
  nix.switchTo = async (closure) => {
    if (closure !== gen2) return moveCurrent(closure)
    reached()
    await failed
    return { code: 1, output: "activation script failed" }
  }
  const { reconciler, reports, phases } = reconcilerOn(nix, {
    autoHeal: true,
    initialDesired: gen2,
    // A retry carried over to the new closure would hold it back for an hour.
    healBackoff: createBackoff({ initialMs: 3_600_000, maxMs: 3_600_000, jitter: "none" }),
  })
  reconciler.start()
  try {
    await atSwitch
    reconciler.setDesired(gen1, "heartbeat", performance.now())
    fail()
    while (phases.length < 2) await Bun.sleep(5)
    const healed = reports.flatMap((r) =>
      r.type.startsWith("heal.") && "attempt" in r.data ? [[r.type, r.data.desired, r.data.attempt]] : [],
    )
    expect({ healed, phase: reconciler.phase, links: reconciler.links }).toEqual({
      healed: [
        ["heal.started", gen2, 1],
        ["heal.failed", gen2, 1],
        ["heal.started", gen1, 1],
        ["heal.succeeded", gen1, 1],
      ],
      phase: "congruent",
      links: { profile: gen1, current: gen1, booted: gen1 },
    })
    expect(reports.find((r) => r.type === "heal.failed")?.data).toMatchObject({ retryInMs: null })
    expect(switched).toEqual([gen1])
  } finally {
    reconciler.stop()
  }
})

// An `activate` forces one heal of its own closure, past --no-auto-heal and past a hold. A desired
// closure the control plane set afterwards without an activation (a heartbeat's answer, both arriving
// while a long heal ran, say) supersedes that activation, and its force with it.
test("an activate's force goes with its closure when a later desired closure supersedes it", async () => {
  await pointAll(gen1)
  const { nix, switched } = healingNix()
  const { reconciler, reports, phases } = reconcilerOn(nix)
  reconciler.start()
  try {
    while (phases.length === 0) await Bun.sleep(5)
    const activated = reconciler.activate(gen2)
    reconciler.setDesired(gen3, "heartbeat", performance.now())
    expect(await activated).toEqual({ success: false, output: `superseded by ${gen3}` })
    while (phases.length < 2) await Bun.sleep(5)
    expect({ switched, phase: reconciler.phase, reports: reports.map((r) => r.type) }).toEqual({
      switched: [],
      phase: "drifted",
      reports: ["drift.detected"],
    })
  } finally {
    reconciler.stop()
  }
})

// A push deploy switches the node under a hold before the control plane gives the agent the new
// closure. The agent leaves that alone, but what it publishes is still one reading: the deploy's links
// beside the phase the last check had would say "congruent" of a node that runs something else.
test("under a deploy hold a check publishes the links it read with the drift they show", async () => {
  await pointAll(gen1)
  const { nix, switched } = healingNix()
  const { reconciler, reports, phases } = reconcilerOn(nix, { autoHeal: true })
  reconciler.start()
  try {
    while (phases.length === 0) await Bun.sleep(5)
    expect(reconciler.phase).toBe("congruent")
    await mkdir(join(dir, "chimera"), { recursive: true })
    await writeFile(join(dir, "chimera/deploy-hold"), `${Math.floor(Date.now() / 1000) + 60} deploy-1\n`)
    await pointAll(gen2)
    reconciler.request()
    while (phases.length < 2) await Bun.sleep(5)
    expect({ phase: reconciler.phase, links: reconciler.links, switched, reports }).toEqual({
      phase: "drifted",
      links: { profile: gen2, current: gen2, booted: gen2 },
      switched: [],
      reports: [],
    })
  } finally {
    reconciler.stop()
    await rm(join(dir, "chimera"), { recursive: true, force: true })
  }
})

// A heal can fail half-way: the profile set, the switch refused. What it leaves is the agent's own
// doing, told by heal.failed; the retry must not report it again as drift somebody else made.
test("a heal that failed half-way is retried without reporting its own half as drift", async () => {
  await pointAll(gen2)
  const { nix, switched } = refusingFirstSwitch({ code: 1, output: "activation script failed" })
  const { reconciler, reports } = reconcilerOn(nix, {
    autoHeal: true,
    healBackoff: createBackoff({ initialMs: 1, maxMs: 1, jitter: "none" }),
  })
  reconciler.start()
  try {
    while (!reports.some((r) => r.type === "heal.succeeded")) await Bun.sleep(5)
    const told = reports.map((r) => (r.type === "drift.detected" ? [r.type, ...r.data.kinds] : [r.type]))
    expect({ told, switched }).toEqual({
      told: [
        ["drift.detected", "profile-drift", "runtime-drift"],
        ["heal.started"],
        ["heal.failed"],
        ["heal.started"],
        ["heal.succeeded"],
      ],
      switched: [gen1],
    })
  } finally {
    reconciler.stop()
  }
})

// NixOS's switch exits non-zero when a unit fails to start, with the node switched all the same: the
// heal failed (an incident opens), and the next check, finding the node on its closure, resolves it.
test("a heal that failed but left the node on its closure is reported resolved by the next check", async () => {
  await pointAll(gen2)
  await repoint("booted-system", gen1)
  const { nix } = refusingFirstSwitch({ code: 4, output: "warning: the following units failed: app.service" }, true)
  const { reconciler, reports } = reconcilerOn(nix, {
    autoHeal: true,
    healBackoff: createBackoff({ initialMs: 1, maxMs: 1, jitter: "none" }),
  })
  reconciler.start()
  try {
    while (reconciler.phase !== "congruent") await Bun.sleep(5)
    expect(reports.map((r) => r.type)).toEqual(["drift.detected", "heal.started", "heal.failed", "drift.resolved"])
  } finally {
    reconciler.stop()
  }
})

// A hold that comes and goes while a failed heal waits for its retry takes the retry's timer for its
// own; the check at its end, still inside the backoff, must leave a timer for the retry, or the node
// waits for the next poll (--drift-interval) or link change to be healed at all.
test("a failed heal is still retried when its backoff outlasts a deploy hold that came meanwhile", async () => {
  await pointAll(gen2)
  const { nix, switched } = refusingFirstSwitch({ code: 1, output: "activation script failed" })
  const { reconciler, reports } = reconcilerOn(nix, {
    autoHeal: true,
    healBackoff: createBackoff({ initialMs: 1500, maxMs: 1500, jitter: "none" }),
  })
  reconciler.start()
  try {
    while (!reports.some((r) => r.type === "heal.failed")) await Bun.sleep(5)
    // A hold ending within a second, before the retry is due (1.5 s after the failure).
    await mkdir(join(dir, "chimera"), { recursive: true })
    await writeFile(join(dir, "chimera/deploy-hold"), `${Math.floor(Date.now() / 1000) + 1} deploy-1\n`)
    reconciler.request()
    const deadline = Date.now() + 5000
    while (!reports.some((r) => r.type === "heal.succeeded") && Date.now() < deadline) await Bun.sleep(20)
    expect({ types: reports.map((r) => r.type), switched }).toEqual({
      types: ["drift.detected", "heal.started", "heal.failed", "heal.started", "heal.succeeded"],
      switched: [gen1],
    })
  } finally {
    reconciler.stop()
    await rm(join(dir, "chimera"), { recursive: true, force: true })
  }
})

// With --no-auto-heal the control plane may move the desired closure of a node that already drifts.
// The drift report names the closure it drifts from: an operator (and the missing-closure incident,
// which says which closure to copy) must learn of the new one, even when the kinds are the same.
test("with auto-heal off, drift from a new desired closure is reported though its kinds are the old drift's", async () => {
  await pointAll(gen3)
  const { reconciler, reports, phases } = reconcilerOn(nixOf())
  reconciler.start()
  try {
    while (phases.length === 0) await Bun.sleep(5)
    reconciler.setDesired(gen2, "heartbeat", performance.now())
    while (phases.length < 2) await Bun.sleep(5)
    const told = reports.map((r) =>
      r.type === "drift.detected" ? [r.type, r.data.desired, ...r.data.kinds] : [r.type],
    )
    expect({ told, phase: reconciler.phase }).toEqual({
      told: [
        ["drift.detected", gen1, "profile-drift", "runtime-drift"],
        ["drift.detected", gen2, "profile-drift", "runtime-drift"],
      ],
      phase: "drifted",
    })
  } finally {
    reconciler.stop()
  }
})

// A desired closure set while a heal runs is judged by the next check, which follows at once. Until it
// has read the links, what a heartbeat or a scrape sees must be what the superseded heal left: not
// `healing` (nothing heals) beside the links from before the heal (the switch has moved them).
test("after a heal the desired closure changed under, no heal is shown running and its links are shown", async () => {
  await pointAll(gen1)
  const { promise: finished, resolve: finish } = Promise.withResolvers<void>()
  const { promise: atSwitch, resolve: reached } = Promise.withResolvers<void>()
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const { promise: nextCheck, resolve: atNextCheck } = Promise.withResolvers<void>()
  const { nix } = healingNix()
  const moveCurrent = nix.switchTo
  const readLinks = nix.readLinks
  let healEnded = false
  nix.switchTo = async (closure) => {
    reached()
    await finished
    return moveCurrent(closure)
  }
  nix.readLinks = async () => {
    if (healEnded) {
      atNextCheck()
      await released
    }
    return readLinks()
  }
  const { reconciler, reports, phases } = reconcilerOn(nix, {
    report: (r) => {
      reports.push(r)
      if (r.type === "heal.succeeded") healEnded = true
    },
  })
  reconciler.start()
  try {
    while (phases.length === 0) await Bun.sleep(5)
    const activated = reconciler.activate(gen2)
    await atSwitch
    reconciler.setDesired(gen3, "heartbeat", performance.now())
    finish()
    await nextCheck
    expect({ phase: reconciler.phase, links: reconciler.links, left: phases.at(-1) }).toEqual({
      phase: "drifted",
      links: { profile: gen2, current: gen2, booted: gen1 },
      left: "drifted",
    })
    release()
    expect(await activated).toEqual({ success: false, output: `superseded by ${gen3}` })
    while (phases.length < 3) await Bun.sleep(5)
    const told = reports.map((r) => [r.type, "desired" in r.data ? r.data.desired : null])
    expect({ told, phase: reconciler.phase }).toEqual({
      told: [
        ["heal.started", gen2],
        ["heal.succeeded", gen2],
        ["drift.detected", gen3],
      ],
      phase: "drifted",
    })
  } finally {
    reconciler.stop()
  }
})

// The control plane sets a node's desired closure and queues an `activate` of it together: the
// heartbeat's answer may start the heal first, and the activation arriving during it is answered by
// that heal (it asked for that closure, and that heal is to it). Its force, past a deploy hold, is
// spent with that answer: the failed heal's retry is auto-heal's own and waits for a hold like any.
test("an activate answered by a heal already running spends its force with it, so the retry waits for a hold to end", async () => {
  await pointAll(gen2)
  const { promise: failed, resolve: fail } = Promise.withResolvers<void>()
  const { promise: atSwitch, resolve: reached } = Promise.withResolvers<void>()
  const { nix, switched } = healingNix()
  const moveCurrent = nix.switchTo
  let refusals = 1
  // The hold's end (ms), a second or two after the failed heal: well past its retry's 200 ms.
  let holdEnds = Number.POSITIVE_INFINITY
  let retriedAt = 0
  nix.switchTo = async (closure) => {
    if (refusals-- <= 0) {
      retriedAt = Date.now()
      return moveCurrent(closure)
    }
    reached()
    await failed
    // A push deploy took the node meanwhile: it holds the switch lock and the node until it confirms.
    holdEnds = (Math.floor(Date.now() / 1000) + 2) * 1000
    await mkdir(join(dir, "chimera"), { recursive: true })
    await writeFile(join(dir, "chimera/deploy-hold"), `${holdEnds / 1000} deploy-1\n`)
    return { code: 1, output: "another switch is in progress" }
  }
  const { reconciler, reports } = reconcilerOn(nix, {
    autoHeal: true,
    healBackoff: createBackoff({ initialMs: 200, maxMs: 200, jitter: "none" }),
  })
  reconciler.start()
  try {
    await atSwitch
    const activated = reconciler.activate(gen1)
    fail()
    expect(await activated).toMatchObject({ success: false })
    // The retry is auto-heal's: it heals once the hold has ended, not when its backoff came due.
    while (!reports.some((r) => r.type === "heal.succeeded")) await Bun.sleep(5)
    expect({ types: reports.map((r) => r.type), switched, afterHold: retriedAt >= holdEnds }).toEqual({
      types: ["drift.detected", "heal.started", "heal.failed", "heal.started", "heal.succeeded"],
      switched: [gen1],
      afterHold: true,
    })
  } finally {
    reconciler.stop()
    await rm(join(dir, "chimera"), { recursive: true, force: true })
  }
})

// A heal's switch may restart chimera-agent.service: the agent stops mid-heal, the heal ends after its
// spool closed, and what it reports then is lost. The agent started next must still tell the drift it
// finds gone (the control plane watches a told drift until then), so that heal's end is not taken as told.
test("a heal ending after the agent stopped leaves its drift for the restarted agent to report resolved", async () => {
  await pointAll(gen2)
  await repoint("booted-system", gen1)
  const { promise: finished, resolve: finish } = Promise.withResolvers<void>()
  const { promise: atSwitch, resolve: reached } = Promise.withResolvers<void>()
  const { nix } = healingNix()
  const moveCurrent = nix.switchTo
  nix.switchTo = async (closure) => {
    reached()
    await finished
    return moveCurrent(closure)
  }
  const persisted: ToldDrift[] = []
  const before = reconcilerOn(nix, { autoHeal: true, persistDrift: (d) => persisted.push(d) })
  before.reconciler.start()
  await atSwitch
  before.reconciler.stop()
  finish()
  while (!before.reports.some((r) => r.type === "heal.succeeded")) await Bun.sleep(5)
  expect(persisted).toEqual([{ desired: gen1, kinds: ["profile-drift", "runtime-drift"] }])

  const after = reconcilerOn(nixOf(), { autoHeal: true, initialDrift: persisted.at(-1) })
  after.reconciler.start()
  try {
    while (after.phases.length === 0) await Bun.sleep(5)
    expect(after.reports.map((r) => r.type)).toEqual(["drift.resolved"])
  } finally {
    after.reconciler.stop()
  }
})
