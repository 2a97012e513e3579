// NixOS's switch lock between the agent and a switch by hand, with a real agent in a test node (its own
// /run, so /run/nixos/switch-to-configuration.lock is the node's). A process holding the lock with
// flock(1), as switch-to-configuration holds it while it activates, stands for a `nixos-rebuild switch`
// in progress: the agent sees the drift it made but does not touch the profile or switch until the
// lock is free, then heals; held past --switch-lock-wait, the heal is skipped, reported with the
// reason, and retried once the lock is free.
import { beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { AgentReport } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createTestNode, SYSTEM_PROFILE, type TestNode, waitForSystem } from "../tests/support/test-node.ts"
import { requireTool } from "../tests/support/tools.ts"
import { waitFor } from "../tests/support/wait.ts"
import { SWITCH_LOCK_PATH } from "./switch-lock.ts"

const MAIN = join(import.meta.dir, "main.ts")

let gen1: StorePath
let gen2: StorePath

beforeAll(async () => {
  requireTool("flock")
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1, { tag: "lock" }), buildTestSystem(2, { tag: "lock" })])
})

/** A standalone agent enforcing gen1; what it reported is read back from its spool. */
function startAgent(node: TestNode, waitSeconds: number) {
  const stateDir = join(node.dir, "state")
  const proc = node.spawn(
    [
      process.execPath,
      MAIN,
      "--node-id",
      node.name,
      "--state-dir",
      stateDir,
      "--desired",
      gen1,
      "--log-level",
      "debug",
    ].concat(["--switch-lock-wait", String(waitSeconds)]),
    { env: { CHIMERA_URL: "", CHIMERA_JOIN_TOKEN: "" } },
  )
  let log = ""
  void (async () => {
    if (!(proc.stderr instanceof ReadableStream)) return
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) log += chunk
  })()
  const reports = async (): Promise<AgentReport[]> => {
    const file = Bun.file(join(stateDir, "spool.jsonl"))
    if (!(await file.exists())) return []
    return (await file.text())
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((r) => "seq" in r)
  }
  return {
    log: () => log,
    reports,
    async [Symbol.asyncDispose]() {
      proc.kill("SIGTERM")
      await proc.exited
    },
  }
}

/**
 * A switch by hand, in progress: it holds the lock (flock, as switch-to-configuration does), has set
 * the profile to `closure` and pointed /run/current-system at it, and holds on until released.
 */
async function manualSwitchInProgress(node: TestNode, closure: StorePath) {
  const release = join(node.dir, "release-lock")
  await node.exec(["mkdir", "-p", "/run/nixos"])
  const holder = node.spawn(
    [
      "flock",
      SWITCH_LOCK_PATH,
      "sh",
      "-c",
      `nix-env -p ${SYSTEM_PROFILE} --set ${closure} && ln -sfn ${closure} /run/current-system && : > "$1.held" && while [ ! -e "$1" ]; do sleep 0.1; done`,
      "sh",
      release,
    ],
    { stdout: "ignore", stderr: "pipe" },
  )
  await waitFor(
    "the lock held",
    () => Bun.file(`${release}.held`).exists(),
    (held) => held,
    30_000,
  )
  return {
    async release() {
      await Bun.write(release, "")
      await holder.exited
    },
  }
}

/**
 * A local user (nobody) holding the lock, shared, on a lock file left 0644 as NixOS leaves it: any
 * user may open it for reading, and flock needs no more. Resolves once the hold is in place.
 * `descriptor`: locked as scripts do, `exec 9<FILE; flock 9`: the process that took the lock (flock)
 * is gone at once, and /proc/locks names its pid while the shell's open descriptor keeps the hold.
 */
async function userHoldsLock(node: TestNode, how: "process" | "descriptor" = "process") {
  await node.exec(["sh", "-c", `mkdir -p /run/nixos && : > ${SWITCH_LOCK_PATH} && chmod 0644 ${SWITCH_LOCK_PATH}`])
  const hold =
    how === "process"
      ? // The lock stays with `sleep` itself, so killing the process ends the hold.
        ["flock", "--no-fork", "--shared", SWITCH_LOCK_PATH, "sleep", "600"]
      : ["sh", "-c", `exec 9<${SWITCH_LOCK_PATH}; flock --shared 9; exec sleep 600`]
  const squatter = node.spawn([requireTool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", ...hold], {
    stdout: "ignore",
    stderr: "pipe",
  })
  try {
    await waitFor(
      "the user's hold on the lock",
      async () => (await node.exec(["flock", "--nonblock", "--exclusive", SWITCH_LOCK_PATH, "true"])).code,
      (code) => code !== 0,
      30_000,
    )
  } catch (error) {
    squatter.kill()
    throw error
  }
  return squatter
}

const types = (r: AgentReport[]) => r.map((x) => x.type)
const started = (agent: { log(): string }) =>
  waitFor(
    "the agent started",
    async () => agent.log(),
    (l) => l.includes('"msg":"started"'),
    30_000,
  )

describe("NixOS's switch lock", () => {
  test("the agent waits for a switch by hand holding the lock, then heals", async () => {
    await using node = await createTestNode({ name: "lock-wait", boot: gen1 })
    await using agent = startAgent(node, 600)
    await started(agent)
    const manual = await manualSwitchInProgress(node, gen2)
    await waitFor(
      "the agent waiting for the lock",
      async () => agent.log(),
      (l) => l.includes("another switch holds the lock"),
      60_000,
    )
    // While the lock is held the agent has changed nothing: the node runs what the person switched to.
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })
    expect(types(await agent.reports())).not.toContain("heal.succeeded")
    await manual.release()
    await waitForSystem(node, gen1, "the node healed back", 60_000)
    const r = await waitFor("heal.succeeded", agent.reports, (x) => types(x).includes("heal.succeeded"), 30_000)
    expect(types(r)).not.toContain("heal.failed")
  }, 180_000)

  test("held past --switch-lock-wait, the heal is skipped and reported, and retried once the lock is free", async () => {
    await using node = await createTestNode({ name: "lock-skip", boot: gen1 })
    await using agent = startAgent(node, 1)
    await started(agent)
    const manual = await manualSwitchInProgress(node, gen2)
    const r = await waitFor("heal.failed", agent.reports, (x) => types(x).includes("heal.failed"), 60_000)
    const failed = r.find((x) => x.type === "heal.failed")
    const error = failed?.type === "heal.failed" ? failed.data.error : ""
    expect(error).toContain(`held ${SWITCH_LOCK_PATH} for more than 1 s (pid `)
    // The holder is named: root, as a switch is.
    expect(error).toMatch(/\(pid \d+, uid 0\); this heal was skipped and will be retried/)
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })
    await manual.release()
    await waitForSystem(node, gen1, "the node healed back", 120_000)
    await waitFor("heal.succeeded", agent.reports, (x) => types(x).includes("heal.succeeded"), 30_000)
  }, 240_000)

  test("a lock held by a local user, not by a switch, does not stop the heal; the lock file becomes root's alone", async () => {
    await using node = await createTestNode({ name: "lock-user", boot: gen1 })
    const squatter = await userHoldsLock(node)
    try {
      await using agent = startAgent(node, 600)
      await started(agent)
      await node.switchTo(gen2)
      await waitForSystem(node, gen1, "the node healed back, the user's hold notwithstanding", 60_000)
      expect(agent.log()).toContain("not root's, not by a switch; replaced the lock file")
      const mode = await node.exec(["stat", "-c", "%a %u", SWITCH_LOCK_PATH])
      expect(mode.stdout.trim()).toBe("600 0")
      expect(squatter.exitCode).toBeNull()
    } finally {
      squatter.kill()
      await squatter.exited
    }
  }, 180_000)

  test("a local user's hold whose locking process is gone (flock on a descriptor) does not stop the heal either", async () => {
    await using node = await createTestNode({ name: "lock-user-fd", boot: gen1 })
    const squatter = await userHoldsLock(node, "descriptor")
    try {
      await using agent = startAgent(node, 600)
      await started(agent)
      await node.switchTo(gen2)
      await waitFor(
        "the node healed back, the user's hold notwithstanding",
        () => node.links(),
        (l) => l.profile === gen1 && l.current === gen1,
        60_000,
      )
      expect(agent.log()).toContain("not root's, not by a switch; replaced the lock file")
      expect(squatter.exitCode).toBeNull()
    } finally {
      squatter.kill()
      await squatter.exited
    }
  }, 180_000)

  test("a root switch queued behind a local user's hold is waited for, not raced: the lock file stays", async () => {
    await using node = await createTestNode({ name: "lock-queued", boot: gen1 })
    const inode = async () => (await node.exec(["stat", "-c", "%i", SWITCH_LOCK_PATH])).stdout.trim()
    const squatter = await userHoldsLock(node)
    const before = await inode()
    const marker = join(node.dir, "root-switch-ran")
    let queued: ReturnType<TestNode["spawn"]> | undefined
    try {
      // A root switch, blocked behind the user's hold.
      queued = node.spawn(["flock", "--exclusive", SWITCH_LOCK_PATH, "sh", "-c", `: > ${marker}`], {
        stdout: "ignore",
        stderr: "pipe",
      })
      await waitFor(
        "the root switch queued",
        async () => (await Bun.file("/proc/locks").text()).includes("->"),
        Boolean,
        30_000,
      )
      await using agent = startAgent(node, 600)
      await started(agent)
      await node.switchTo(gen2)
      await waitFor(
        "the agent waiting for the lock",
        async () => agent.log(),
        (l) => l.includes("another switch holds the lock"),
        60_000,
      )
      expect(agent.log()).not.toContain("replaced the lock file")
      expect(await inode()).toBe(before)
      expect(await Bun.file(marker).exists()).toBe(false)
      // The user lets go: the root switch runs, then the agent heals.
      squatter.kill()
      await waitFor("the root switch to run", () => Bun.file(marker).exists(), Boolean, 30_000)
      await waitForSystem(node, gen1, "the node healed back", 60_000)
    } finally {
      squatter.kill()
      queued?.kill()
      await squatter.exited
    }
  }, 180_000)
})
