// Deploys on a bad day, on a testbed of real sshd nodes with the real CLI: a switch that never ends,
// a full disk under the profiles or under /run/chimera, and what the node, the record and the operator
// are left with each time.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import type { StorePath } from "../protocol/ids.ts"
import { UNCONFIRMED_DEPLOY_MARKER } from "../protocol/unconfirmed-deploy.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { run } from "./support/tools.ts"

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

async function deployJson(args: string[]) {
  const r = await run(
    [
      process.execPath,
      MAIN,
      "deploy",
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
  try {
    return { code: r.code, record: JSON.parse(r.stdout) as DeploymentRecord, stderr: r.stderr }
  } catch {
    throw new Error(`deploy printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}

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

/** Mounts a tmpfs with `inodes` inodes over `dir` in the node, keeping what was there, then fills it. */
async function fill(n: TestbedNode, dir: string, inodes: number) {
  const r = await n.node.exec([
    "sh",
    "-c",
    `set -e; keep=$(mktemp -d); cp -a "${dir}/." "$keep/"; mount -t tmpfs -o size=1m,nr_inodes=${inodes} tmpfs "${dir}"; cp -a "$keep/." "${dir}/"; rm -rf "$keep"
     i=0; while (: > "${dir}/.fill$i") 2>/dev/null; do i=$((i+1)); done`,
  ])
  if (r.code !== 0) throw new Error(`could not fill ${dir}: ${r.stderr}`)
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
      expect(t.error).not.toContain("stays on the new one")
      expect(await n.node.links()).toMatchObject({ profile: gen1, current: gen1 })
    } finally {
      await n.node.exec(["umount", "/run/chimera"])
    }
  })
})
