// The magic-rollback scripts run directly in a test node (no SSH), to pin down who decides a deploy:
// the watchdog, a confirmation or an abort claim it once (`mkdir decided`) and the others stand down.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createNixSystem } from "../agent/nix-system.ts"
import { MAX_CONFIRM_SECONDS } from "../control/cli/seconds-flag.ts"
import {
  abortScript,
  activateScript,
  confirmScript,
  rollbackScript,
  undecidedDeploysScript,
} from "../control/domain/activation.ts"
import { ACTIVATION_TIMED_OUT_SAYS } from "../control/domain/bounded-switch.ts"
import { BUSY_EXIT, BUSY_SAYS } from "../control/domain/node-claim.ts"
import type { StorePath } from "../protocol/ids.ts"
import { UNCONFIRMED_DEPLOY_MARKER } from "../protocol/unconfirmed-deploy.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestNode, type TestNode, waitForSystem } from "./support/test-node.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(60_000)

let gen1: StorePath
let gen2: StorePath

beforeAll(async () => {
  ;[gen1, gen2] = (await Promise.all([1, 2].map((g) => buildTestSystem(g, { tag: "activation" })))) as [
    StorePath,
    StorePath,
  ]
})

const sh = (node: TestNode, script: string) => node.exec(["sh", "-c", script])
/** The on-disk marker a reboot-time rollback reads: there while a deploy is unconfirmed, gone once decided. */
const marked = async (node: TestNode) => (await node.exec(["test", "-e", UNCONFIRMED_DEPLOY_MARKER])).code === 0
const activate = (node: TestNode, id: string, confirmTimeoutSeconds: number) =>
  sh(node, activateScript({ deployId: id, closure: gen2, isSystem: true, confirmTimeoutSeconds }))

describe("magic rollback on the node", () => {
  test("the watchdog rolls back an unconfirmed deploy, and a confirmation after that is refused", async () => {
    await using node = await createTestNode({ name: "late", boot: gen1 })
    const a = await activate(node, "d1", 1)
    expect(a.code).toBe(0)
    expect(a.stdout).toContain("previous 1 ")
    expect((await node.links()).current).toBe(gen2)
    expect(await marked(node)).toBe(true)
    await waitForSystem(node, gen1, "the watchdog's rollback", 10_000)
    await waitFor(
      "the marker cleared by the watchdog",
      () => marked(node),
      (m) => !m,
      10_000,
    )
    // Rolled back, the node runs what its agent has as desired: the agent is no longer held off.
    await waitFor(
      "the deploy hold lifted by the watchdog",
      () => node.exec(["test", "-e", "/run/chimera/deploy-hold"]),
      (r) => r.code !== 0,
      5000,
    )
    const late = await sh(node, confirmScript("d1", true))
    expect(late.code).toBe(3)
    expect(late.stdout).toContain("too late")
  })

  test("a confirmation claims the deploy: the watchdog stands down, and confirming again is harmless", async () => {
    await using node = await createTestNode({ name: "confirmed", boot: gen1 })
    expect((await activate(node, "d2", 1)).code).toBe(0)
    const first = await sh(node, confirmScript("d2", true))
    expect({ code: first.code, out: first.stdout.trim() }).toEqual({ code: 0, out: gen2 })
    expect(await marked(node)).toBe(false)
    const again = await sh(node, confirmScript("d2", true))
    expect(again.code).toBe(0)
    await Bun.sleep(2500)
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })
  })

  test("an abort rolls back at once and the watchdog does not switch a second time", async () => {
    await using node = await createTestNode({ name: "abort", boot: gen1 })
    expect((await activate(node, "d3", 2)).code).toBe(0)
    const abort = await sh(node, abortScript("d3", { generation: 1, path: gen1 }, true))
    expect({ code: abort.code, last: abort.stdout.trim().split("\n").at(-1) }).toEqual({ code: 0, last: "rolled-back" })
    expect(await node.links()).toMatchObject({ profile: gen1, current: gen1 })
    expect(await marked(node)).toBe(false)
    // Move the node on by hand: a watchdog that still fired would drag it back to generation 1.
    await node.switchTo(gen2)
    await Bun.sleep(3000)
    expect((await node.links()).current).toBe(gen2)
    expect((await sh(node, confirmScript("d3", true))).code).toBe(3)
  })

  // An agent heals whatever differs from its desired closure once the hold lapses: a hold counted from
  // the switch's start ran out under a slow switch, and the agent switched the node back mid-deploy.
  test("the deploy hold covers a slow switch, and the whole confirm window from the switch's end", async () => {
    await using node = await createTestNode({ name: "slow-hold", boot: gen1 })
    const slow = await buildTestSystem(2, { tag: "activation-slow", slowSwitch: 4 })
    const hold = async () => Number((await node.exec(["cat", "/run/chimera/deploy-hold"])).stdout.split(" ")[0])
    const started = Math.floor(Date.now() / 1000)
    const script = activateScript({
      deployId: "d5",
      closure: slow,
      isSystem: true,
      confirmTimeoutSeconds: 5,
      activationTimeoutSeconds: 120,
    })
    const activating = sh(node, script)
    await waitFor(
      "the hold",
      () => node.exec(["test", "-s", "/run/chimera/deploy-hold"]),
      (r) => r.code === 0,
    )
    expect(await hold()).toBeGreaterThanOrEqual(started + 120 + 60)
    expect((await activating).code).toBe(0)
    const activated = Math.floor(Date.now() / 1000)
    expect(await hold()).toBeGreaterThanOrEqual(activated - 1 + 5 + 60)
    expect((await sh(node, confirmScript("d5", true))).code).toBe(0)
  })

  // Two operators deploying at once both planned on a node with nothing undecided, both switched, and
  // each was recorded deployed, with a watchdog armed over the other's generation.
  test("two activations at once: one claims the node, the other is refused before it changes anything", async () => {
    await using node = await createTestNode({ name: "two-at-once", boot: gen1 })
    const slow = await buildTestSystem(3, { tag: "activation-slow", slowSwitch: 2 })
    const [a, b] = await Promise.all([
      sh(node, activateScript({ deployId: "da", closure: slow, isSystem: true, confirmTimeoutSeconds: 30 })),
      sh(node, activateScript({ deployId: "db", closure: gen2, isSystem: true, confirmTimeoutSeconds: 30 })),
    ])
    const [won, lost, wonId, lostId] = a.code === 0 ? [a, b, "da", "db"] : [b, a, "db", "da"]
    expect({ won: won.code, lost: lost.code }).toEqual({ won: 0, lost: BUSY_EXIT })
    expect(lost.stderr).toContain(`${BUSY_SAYS}: ${wonId}`)
    const closure = wonId === "da" ? slow : gen2
    expect(await node.links()).toMatchObject({ profile: closure, current: closure })
    expect((await node.exec(["test", "-e", `/run/chimera/deploys/${lostId}`])).code).not.toBe(0)
    // Unconfirmed, it still holds the node: a rollback now is refused too, and goes through once confirmed.
    const early = await sh(node, rollbackScript(null))
    expect({ code: early.code, said: early.stderr }).toEqual({ code: BUSY_EXIT, said: expect.stringContaining(wonId) })
    expect(await node.links()).toMatchObject({ profile: closure, current: closure })
    expect((await sh(node, confirmScript(wonId, true))).code).toBe(0)
    const late = await sh(node, rollbackScript(null))
    expect(late.code).toBe(0)
    expect(await node.links()).toMatchObject({ profile: gen1, current: gen1 })
  })

  // A rollback's directory is named by its shell's pid, which comes round again: the claim made while an
  // earlier rollback's `ended` still stood there left the new one invisible to the next claim.
  test("a claim is under way even where an earlier script of its name left its end", async () => {
    await using node = await createTestNode({ name: "claim-again" })
    const slow = await buildTestSystem(3, { tag: "activation-slow", slowSwitch: 2 })
    await node.exec(["sh", "-c", "mkdir -p /run/chimera/deploys/dl && touch /run/chimera/deploys/dl/ended"])
    // No previous generation, so no watchdog: only the claim says the first activation is under way.
    const first = sh(node, activateScript({ deployId: "dl", closure: slow, isSystem: true, confirmTimeoutSeconds: 30 }))
    await waitFor(
      "the first activation's claim",
      () => node.exec(["test", "-s", "/run/chimera/deploys/dl/activation.out"]),
      (r) => r.code === 0,
    )
    const second = await activate(node, "d-second", 30)
    expect({ code: second.code, said: second.stderr }).toEqual({ code: BUSY_EXIT, said: expect.stringContaining("dl") })
    expect((await first).code).toBe(0)
    expect(await node.links()).toMatchObject({ profile: slow, current: slow })
  })

  // Out of inodes under /run, the confirmation's claim of the decision failed and was read as the
  // watchdog's: "too late, rolling back", while nothing was rolling back.
  test("a confirmation with no inode left for its claim says so, and goes through once there is room", async () => {
    await using node = await createTestNode({ name: "confirm-full", boot: gen1 })
    const small = await node.exec([
      "sh",
      "-c",
      "mkdir -p /run/chimera && mount -t tmpfs -o nr_inodes=64 tmpfs /run/chimera",
    ])
    expect(small.code).toBe(0)
    expect((await activate(node, "df", 600)).code).toBe(0)
    await sh(node, 'i=0; while (: > "/run/chimera/.fill$i") 2>/dev/null; do i=$((i+1)); done')
    const full = await sh(node, confirmScript("df", true))
    expect({ code: full.code, out: full.stdout.trim() }).toEqual({
      code: 4,
      out: "cannot confirm: no inodes left on /run/chimera (0 free)",
    })
    await sh(node, "rm -f /run/chimera/.fill*")
    expect((await sh(node, confirmScript("df", true))).code).toBe(0)
    await sh(node, 'kill -- -"$(cat /run/chimera/deploys/df/watchdog.pid)"')
  })

  // A reboot in the confirm window empties /run (a tmpfs) and takes the watchdog with it; the agent rolls
  // the node back when it starts. The no-room check then read the deploy's missing directory as a full
  // /run: "cannot confirm: …/decided could not be made" (exit 4: "the node rolls back by itself" later),
  // and an abort said the watchdog would switch back "once there is room", for a watchdog that was gone.
  test("after a reboot in the confirm window, a confirmation is too late and an abort switches nothing, both saying the node restarted", async () => {
    await using node = await createTestNode({ name: "rebooted", boot: gen1 })
    expect((await activate(node, "dr", 600)).code).toBe(0)
    // What the reboot does to /run: the watchdog and the deploy's directory are gone.
    await sh(node, 'kill -- -"$(cat /run/chimera/deploys/dr/watchdog.pid)"; rm -rf /run/chimera')
    const late = await sh(node, confirmScript("dr", true))
    expect({ code: late.code, out: late.stdout.trim() }).toEqual({
      code: 3,
      out: expect.stringContaining("too late: the node has no record of this deploy in /run/chimera/deploys"),
    })
    expect(late.stdout).toContain("its agent rolls an unconfirmed deploy back when it starts")
    const previous = { generation: 1, path: gen1 }
    const abort = await sh(node, abortScript("dr", previous, true))
    expect(abort.code).toBe(1)
    expect(abort.stderr).toContain("no record of this deploy")
    expect(abort.stderr).not.toContain("once there is room")
    // Nothing switched back by the abort: that is the agent's, at its start.
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })
  })

  // statfs says 0 inodes and 0 blocks, total and free, for a filesystem that counts none (here a tmpfs
  // mounted with nr_inodes=0,size=0: unlimited), and every deploy and rollback was refused as out of inodes.
  test("a /run/chimera whose filesystem counts no inodes or blocks is not full: a deploy, its confirmation and a rollback go through", async () => {
    await using node = await createTestNode({ name: "unlimited", boot: gen1 })
    const unlimited = await sh(
      node,
      "mkdir -p /run/chimera && mount -t tmpfs -o nr_inodes=0,size=0 tmpfs /run/chimera && stat -f -c '%c %d %b %f' /run/chimera",
    )
    expect({ code: unlimited.code, counts: unlimited.stdout.trim() }).toEqual({ code: 0, counts: "0 0 0 0" })
    const a = await activate(node, "du", 600)
    expect({ code: a.code, said: a.stderr }).toEqual({ code: 0, said: expect.not.stringContaining("cannot claim") })
    expect((await sh(node, confirmScript("du", true))).code).toBe(0)
    const back = await sh(node, rollbackScript(null))
    expect({ code: back.code, said: back.stderr }).toEqual({
      code: 0,
      said: expect.not.stringContaining("cannot claim"),
    })
    expect(await node.links()).toMatchObject({ profile: gen1, current: gen1 })
  })

  test("an activation whose shell dies before it finishes is rolled back at once, not after the timeout", async () => {
    await using node = await createTestNode({ name: "killed", boot: gen1 })
    // The activating shell is killed right after the switch, before it can mark the activation done,
    // as a dropped SSH session would kill it.
    const script = activateScript({
      deployId: "d4",
      closure: gen2,
      isSystem: true,
      confirmTimeoutSeconds: 600,
    }).replace('touch "$D/activated"', "kill -9 $$")
    await sh(node, script)
    await waitForSystem(node, gen1, "the watchdog's rollback", 10_000)
  })
})

/** How long the hanging system's switch sleeps: a number no other process on the machine sleeps for. */
const HANG_SECONDS = 86_351
const CUT_OFF = `${ACTIVATION_TIMED_OUT_SAYS} (5 s) and was stopped`
/**
 * The hanging switch's sleeps left on `node`: those in its mount namespace, so that another run of
 * these tests on the same machine (test nodes share the PID namespace) is not counted. The pattern's
 * brackets keep it from matching the shell that holds it.
 */
const hangLeft = async (node: TestNode) =>
  (
    await node.exec([
      "sh",
      "-c",
      `for p in $(pgrep -f '[s]leep ${HANG_SECONDS}'); do [ "$(readlink /proc/$p/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ] && echo "$p"; done; true`,
    ])
  ).stdout.trim()

// Switching back runs the old generation's switch, which may hang as any switch may: unbounded, it held
// the watchdog (the node undecided, every later deploy refused), an abort, or a rollback and its claim of
// the node, for ever. It has the activation's bound and code, and says so when it is cut off.
describe("a switch back that hangs", () => {
  let hang: StorePath
  beforeAll(async () => {
    hang = await buildTestSystem(2, { tag: "activation-hang", slowSwitch: HANG_SECONDS })
  })
  /** A node booted on generation 1, whose generation 2 (never switched to) is the hanging system. */
  const withHangingGeneration = async (name: string) => {
    const node = await createTestNode({ name, boot: gen1 })
    const set = await node.exec(["nix-env", "-p", "/nix/var/nix/profiles/system", "--set", hang])
    if (set.code !== 0) throw new Error(`nix-env --set on ${name}: ${set.stderr}`)
    return node
  }

  test("the watchdog's is stopped at the activation timeout, its outcome says so, and the node is free", async () => {
    await using node = await withHangingGeneration("hang-watchdog")
    const a = await sh(
      node,
      activateScript({
        deployId: "dw",
        closure: gen2,
        isSystem: true,
        confirmTimeoutSeconds: 1,
        activationTimeoutSeconds: 5,
      }),
    )
    expect({ code: a.code, previous: a.stdout }).toEqual({ code: 0, previous: expect.stringContaining("previous 2 ") })
    const outcome = await waitFor(
      "the watchdog's outcome",
      async () => (await node.exec(["cat", "/run/chimera/deploys/dw/outcome"])).stdout.trim(),
      (o) => o !== "",
      30_000,
    )
    expect(outcome).toBe(`rollback-failed: ${CUT_OFF}`)
    expect(await hangLeft(node)).toBe("")
    expect((await node.exec(["test", "-e", "/run/chimera/deploy-hold"])).code).not.toBe(0)
    expect((await sh(node, undecidedDeploysScript(0))).stdout.trim()).toBe("")
  }, 60_000)

  test("an abort's is stopped at the activation timeout and says so", async () => {
    await using node = await withHangingGeneration("hang-abort")
    const a = await sh(
      node,
      activateScript({ deployId: "dx", closure: gen2, isSystem: true, confirmTimeoutSeconds: 600 }),
    )
    expect(a.code).toBe(0)
    const t0 = performance.now()
    const abort = await sh(node, abortScript("dx", { generation: 2, path: hang }, true, 5))
    expect(performance.now() - t0).toBeLessThan(30_000)
    expect(abort.code).toBe(1)
    expect(abort.stderr).toContain(CUT_OFF)
    expect(abort.stderr).toContain("rollback failed")
    expect(await hangLeft(node)).toBe("")
    // The claim given back, the watchdog would try again at its time; this deploy is settled by hand, and
    // the watchdog (a session of its own: setsid) ended with what it sleeps in.
    expect((await sh(node, confirmScript("dx", true))).code).toBe(0)
    expect((await sh(node, 'kill -- -"$(cat /run/chimera/deploys/dx/watchdog.pid)"')).code).toBe(0)
  }, 60_000)

  // The rollback's hold covered its switch's bound and a minute to publish: past an activation timeout of
  // 3,530 s (the API and the CLI take up to 3,600) it reached further out than the agent honours, so the
  // agent ignored it and healed the node forward while the switch back ran.
  test("a rollback with the longest activation timeout holds the agent off with a hold the agent honours", async () => {
    await using node = await withHangingGeneration("hang-hold")
    await node.switchTo(gen2)
    const back = sh(node, rollbackScript(null, undefined, MAX_CONFIRM_SECONDS))
    const sleeping = await waitFor(
      "the switch back under way",
      () => hangLeft(node),
      (pid) => pid !== "",
      30_000,
    )
    // What the agent makes of it, read where the agent reads it (beside its current-system link).
    const dir = await mkdtemp(join(tmpdir(), "chimera-hold-"))
    let heldUntil: number
    try {
      await mkdir(join(dir, "chimera"))
      await writeFile(join(dir, "chimera/deploy-hold"), (await node.exec(["cat", "/run/chimera/deploy-hold"])).stdout)
      const agent = createNixSystem({
        systemProfile: join(dir, "profile"),
        currentSystem: join(dir, "current-system"),
        bootedSystem: join(dir, "booted-system"),
      })
      heldUntil = await agent.deployHoldUntil()
    } finally {
      await rm(dir, { recursive: true, force: true })
      await run(["kill", ...sleeping.split("\n")])
      await back
    }
    expect(heldUntil).toBeGreaterThan(Date.now() + 3000 * 1000)
  }, 60_000)

  test("a rollback's is stopped at the activation timeout, says so, and frees the node's claim", async () => {
    await using node = await withHangingGeneration("hang-rollback")
    await node.switchTo(gen2)
    const t0 = performance.now()
    const back = await sh(node, rollbackScript(null, undefined, 5))
    expect(performance.now() - t0).toBeLessThan(30_000)
    expect({ code: back.code, said: back.stderr.trim().split("\n").at(-1) }).toEqual({ code: 124, said: CUT_OFF })
    expect(await hangLeft(node)).toBe("")
    expect((await node.links()).profile).toBe(hang)
    // Nothing holds the node: the next rollback goes through.
    expect((await sh(node, undecidedDeploysScript(0))).stdout.trim()).toBe("")
    expect((await sh(node, rollbackScript(1))).code).toBe(0)
    expect(await node.links()).toMatchObject({ profile: gen1, current: gen1 })
  }, 60_000)
})
