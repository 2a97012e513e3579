// Deploys on a bad day, on a testbed of real sshd nodes with the real CLI: a switch that never ends,
// a full disk under the profiles or under /run/chimera, and what the node, the record and the operator
// are left with each time.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createNix } from "../control/adapters/nix.ts"
import { createSshExecutor } from "../control/adapters/ssh/index.ts"
import { deploy } from "../control/domain/deploy.ts"
import type { Phase } from "../control/domain/deployment-record.ts"
import type { StorePath } from "../protocol/ids.ts"
import { UNCONFIRMED_DEPLOY_MARKER } from "../protocol/unconfirmed-deploy.ts"
import { oneTarget } from "./support/deploy-options.ts"
import { deployOutput } from "./support/deployment-record.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(90_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")
/** How long the hanging system's switch sleeps: a number no other process on the machine sleeps for. */
const HANG_SECONDS = 86_347

let work: string
let bed: Testbed
let gen1: StorePath

/** A Nix file that builds generation `gen` of the test system, with `extra` Nix arguments. */
async function config(name: string, gen: string, extra = ""): Promise<string> {
  const path = join(work, `${name}.nix`)
  await writeFile(path, `import ${TEST_SYSTEM} { generation = "${gen}"; tag = "bad-day"; ${extra} }\n`)
  return path
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-bad-day-"))
  gen1 = await buildTestSystem(1, { tag: "bad-day" })
  bed = await createTestbed({ nodes: 2, boot: gen1 })
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await rm(work, { recursive: true, force: true })
})

/** The real CLI's `command` with `--json`, over the testbed's SSH, with no control plane. */
const cli = (command: string, args: string[]) =>
  run(
    [
      process.execPath,
      MAIN,
      command,
      ...args,
      "--json",
      "--identity",
      bed.identityFile,
      "--known-hosts",
      bed.knownHostsFile,
    ],
    {
      env: {
        CHIMERA_DATA_DIR: join(work, "data"),
        CHIMERA_URL: "",
        CHIMERA_TOKEN: "",
        CHIMERA_CONFIG_FILE: "",
        NO_COLOR: "1",
      },
    },
  )

const deployJson = async (args: string[]) => deployOutput(await cli("deploy", args))

describe("a switch that never ends", () => {
  test("is stopped at --activation-timeout and the node rolled back; the record and the operator are told", async () => {
    const [n] = bed.nodes
    const hang = await config("hang", "2", `slowSwitch = ${HANG_SECONDS};`)
    const t0 = performance.now()
    const { code, record } = await deployJson(["--targets", n!.target, "--config", hang, "--activation-timeout", "5"])
    // Bounded: the 5 s, the watchdog's second and the switch back, not the confirm window or the hour.
    expect(performance.now() - t0).toBeLessThan(45_000)
    expect(code).toBe(1)
    const t = record.targets[0]!
    expect(t.status).toBe("rolled-back")
    expect(t.error).toContain("did not finish within the activation timeout (5 s) and was stopped on the node")
    expect(t.error).toContain("activating the configuration...")
    expect(record.status).not.toBe("succeeded")
    // Profile and running system both back on generation 1, and nothing of the hung switch left running.
    expect(await n!.node.links()).toMatchObject({ profile: gen1, current: gen1 })
    const left = await run(["pgrep", "-f", `sleep ${HANG_SECONDS}`])
    expect(left.stdout.trim()).toBe("")
    const outcome = await n!.node.exec(["sh", "-c", `cat /run/chimera/deploys/${record.id}/outcome`])
    expect(outcome.stdout.trim()).toBe("rolled-back")
  })
})

describe("a switch back that never ends", () => {
  // Unbounded, `chimera rollback` waited for its SSH time-out and the switch went on on the node, its
  // claim with it: every later deploy and rollback of the node was refused for as long as it hung.
  test("is stopped at the rollback's --activation-timeout, said on the target, and the node is free again", async () => {
    const n = bed.nodes[0]!
    const hang = await buildTestSystem(7, { tag: "bad-day", slowSwitch: HANG_SECONDS })
    const set = await n.node.exec(["nix-env", "-p", "/nix/var/nix/profiles/system", "--set", hang])
    expect(set.code).toBe(0)
    const gen8 = await config("gen8", "8")
    expect((await deployJson(["--targets", n.target, "--config", gen8])).record.status).toBe("succeeded")

    const t0 = performance.now()
    const back = await cli("rollback", ["--targets", n.target, "--activation-timeout", "5"])
    expect(performance.now() - t0).toBeLessThan(45_000)
    expect(back.code).toBe(1)
    const [r] = (JSON.parse(back.stdout) as { results: { ok: boolean; error: string }[] }).results
    expect(r?.ok).toBe(false)
    expect(r?.error).toContain(
      "switch-to-configuration did not finish within the activation timeout (5 s) and was stopped on the node",
    )
    expect(r?.error).toContain(`chimera generations --targets ${n.target}`)
    expect((await run(["pgrep", "-f", `sleep ${HANG_SECONDS}`])).stdout.trim()).toBe("")
    // Nothing holds the node: the next deploy is neither refused nor kept waiting.
    const again = await deployJson(["--targets", n.target, "--config", gen8])
    expect(again.record.targets[0]).toMatchObject({ status: "deployed" })
    await n.node.switchTo(gen1) // where the tests after this one expect it
  })
})

/**
 * Kills the node's sshd and every session it holds open, as a crash or an OOM kill of sshd would:
 * the commands those sessions ran lose their connection but not their lives.
 */
async function killSshd(n: TestbedNode) {
  const master = await n.sshd.pid()
  const sessions = master ? (await run(["ps", "-o", "pid=", "--ppid", String(master)])).stdout.split(/\s+/) : []
  await n.stopSshd()
  for (const pid of sessions.filter(Boolean)) process.kill(Number(pid), "SIGKILL")
}

/** The domain's deploy of `configPath` to testbed node `n`, with short windows and `onPhase` for the mischief. */
async function deployTo(n: TestbedNode, configPath: string, onPhase: (phase: Phase) => void) {
  const exec = createSshExecutor({ identity: bed.identityFile, knownHosts: bed.knownHostsFile, timeoutMs: 5000 })
  try {
    return await deploy(oneTarget(n, configPath, { activationTimeoutSeconds: 5 }), {
      nix: createNix(),
      exec,
      onPhase: (_t, phase) => onPhase(phase),
    })
  } finally {
    await exec.close()
  }
}

describe("sshd killed mid-deploy", () => {
  test("as the copy starts: the deploy fails there and says nothing was activated", async () => {
    const n = bed.nodes[0]!
    const gen5 = await config("gen5", "5")
    try {
      const record = await deployTo(n, gen5, (phase) => {
        if (phase === "copy") void n.stopSshd()
      })
      const t = record.targets[0]!
      expect(t.status).toBe("failed")
      expect(t.error).toStartWith("copy: ")
      expect(t.error).toContain("nothing was activated: the node is unchanged")
      expect(await n.node.links()).toMatchObject({ profile: gen1, current: gen1 })
    } finally {
      await n.startSshd()
    }
  })

  test("mid-activation: the deploy says the activation goes on without it, and the node stops the hung switch and rolls back", async () => {
    const n = bed.nodes[0]!
    const hang = await config("hang-dropped", "4", `slowSwitch = ${HANG_SECONDS};`)
    try {
      const record = await deployTo(n, hang, (phase) => {
        if (phase === "activate") setTimeout(() => void killSshd(n), 1500)
      })
      const t = record.targets[0]!
      expect(t.status).toBe("failed")
      // Not "exited null" and "no previous generation ... stays on the new one": the answer never came.
      expect(t.error).toContain("the connection closed before the command exited")
      expect(t.error).toContain("the activation goes on on the node without this connection")
      expect(t.error).toContain("stopped at the activation timeout, 5 s")
      // And so it does: the switch is stopped at 5 s and the watchdog puts generation 1 back.
      // (The hung switch never moved /run/current-system; the profile it did move is what goes back.)
      await waitFor(
        "the node's own rollback",
        () => n.node.links(),
        (l) => l.profile === gen1,
        20_000,
      )
      expect((await n.node.links()).current).toBe(gen1)
      expect((await run(["pgrep", "-f", `sleep ${HANG_SECONDS}`])).stdout.trim()).toBe("")
    } finally {
      await n.startSshd()
    }
  })
})

/** Mounts a tmpfs with `inodes` inodes over `dir` in the node, keeping what was there. */
async function mountSmall(n: TestbedNode, dir: string, inodes: number) {
  const r = await n.node.exec([
    "sh",
    "-c",
    `set -e; keep=$(mktemp -d); cp -a "${dir}/." "$keep/"; mount -t tmpfs -o size=1m,nr_inodes=${inodes} tmpfs "${dir}"; cp -a "$keep/." "${dir}/"; rm -rf "$keep"`,
  ])
  if (r.code !== 0) throw new Error(`could not mount a tmpfs on ${dir}: ${r.stderr}`)
}

/** Takes every inode left in `dir`'s filesystem. */
async function fillUp(n: TestbedNode, dir: string) {
  const r = await n.node.exec(["sh", "-c", `i=0; while (: > "${dir}/.fill$i") 2>/dev/null; do i=$((i+1)); done`])
  if (r.code !== 0) throw new Error(`could not fill ${dir}: ${r.stderr}`)
}

/** A small tmpfs over `dir`, full. */
async function fill(n: TestbedNode, dir: string, inodes: number) {
  await mountSmall(n, dir, inodes)
  await fillUp(n, dir)
}

describe("a full disk on the node", () => {
  test("under the profiles: the switch never starts, the node is said to be unchanged, and its agent is not held off", async () => {
    const n = bed.nodes[1]!
    const gen2 = await config("gen2", "2")
    await fill(n, "/nix/var/nix/profiles", 64)
    try {
      const { code, record } = await deployJson(["--targets", n.target, "--config", gen2])
      expect(code).toBe(1)
      const t = record.targets[0]!
      // Not "failed" with "rolling back failed too": the profile could not move, so there was nothing to undo.
      expect(t.status).toBe("rolled-back")
      expect(t.error).toContain("No space left on device")
      expect(t.error).not.toContain("rolling back failed")
      expect(t.log).toContainEqual(expect.stringContaining("not rolled back: the node is still on generation 1"))
      expect(await n.node.links()).toMatchObject({ profile: gen1, current: gen1 })
      // The deploy is decided: no hold keeps an agent from healing for the activation's five minutes.
      expect((await n.node.exec(["test", "-e", "/run/chimera/deploy-hold"])).code).not.toBe(0)
      expect((await n.node.exec(["test", "-e", UNCONFIRMED_DEPLOY_MARKER])).code).not.toBe(0)
    } finally {
      await n.node.exec(["umount", "/nix/var/nix/profiles"])
    }
  })

  test("under /run/chimera: the activation cannot start, and the node is said to be unchanged", async () => {
    const n = bed.nodes[1]!
    const gen3 = await config("gen3", "3")
    // The earlier deploys here are decided; the small tmpfs takes only what the new one needs.
    await n.node.exec(["sh", "-c", "rm -rf /run/chimera; mkdir -p /run/chimera"])
    await fill(n, "/run/chimera", 8)
    try {
      const { code, record } = await deployJson(["--targets", n.target, "--config", gen3])
      expect(code).toBe(1)
      const t = record.targets[0]!
      expect(t.status).toBe("rolled-back")
      expect(t.error).toContain(`the node is unchanged: it still runs ${gen1}`)
      expect(t.error).toContain("cannot claim the node: no inodes left on /run/chimera (0 free); nothing was changed")
      expect(t.error).not.toContain("stays on the new one")
      expect(await n.node.links()).toMatchObject({ profile: gen1, current: gen1 })
      // A rollback the same: refused at once, naming why, the node as it was.
      const back = await cli("rollback", ["--targets", n.target])
      expect(back.code).toBe(1)
      expect(back.stdout).toContain(
        "cannot claim the node: no inodes left on /run/chimera (0 free); nothing was changed",
      )
      expect(await n.node.links()).toMatchObject({ profile: gen1, current: gen1 })
    } finally {
      await n.node.exec(["umount", "/run/chimera"])
    }
  })

  // An abort took its failed claim of the decision (no inode for it) for the watchdog's, and waited five
  // minutes for an outcome nobody would write; the watchdog, failing the same way, stood down for good.
  test("under /run/chimera mid-deploy: the rollback fails at once naming it, and the watchdog rolls back once there is room", async () => {
    const n = bed.nodes[1]!
    const gen9 = await config("gen9", "9")
    await n.node.exec(["sh", "-c", "rm -rf /run/chimera; mkdir -p /run/chimera"])
    await mountSmall(n, "/run/chimera", 200)
    try {
      let filling: Promise<void> = Promise.resolve()
      const t0 = performance.now()
      const exec = createSshExecutor({ identity: bed.identityFile, knownHosts: bed.knownHostsFile, timeoutMs: 5000 })
      const record = await deploy(
        oneTarget(n, gen9, {
          confirmTimeoutSeconds: 8,
          healthChecks: [{ kind: "command", command: "false" }],
          healthTimeoutSeconds: 2,
        }),
        {
          nix: createNix(),
          exec,
          onPhase: (_t, phase) => {
            if (phase === "health") filling = fillUp(n, "/run/chimera")
          },
        },
      ).finally(() => exec.close())
      await filling
      expect(performance.now() - t0).toBeLessThan(30_000)
      const t = record.targets[0]!
      expect(t.status).toBe("failed")
      expect(t.error).toContain("health check failed")
      expect(t.error).toContain("no inodes left on /run/chimera")
      expect(t.error).not.toContain("the watchdog decided")
      // The abort changed nothing: the node is where the activation left it.
      expect(await n.node.links()).toMatchObject({
        profile: expect.stringContaining("-9"),
        current: expect.stringContaining("-9"),
      })
      // Past the confirm window, the watchdog still waits for room; given it, it rolls back.
      await Bun.sleep(8_000)
      expect((await n.node.links()).current).toContain("-9")
      await n.node.exec(["sh", "-c", "rm -f /run/chimera/.fill*"])
      await waitFor(
        "the watchdog's rollback once there is room",
        () => n.node.links(),
        (l) => l.profile === gen1 && l.current === gen1,
        20_000,
      )
    } finally {
      await n.node.exec(["umount", "-l", "/run/chimera"])
    }
  })
})
