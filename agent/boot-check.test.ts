// A reboot inside a push deploy's confirm window, in a test node. The deploy's own activation script
// (control/domain/activation.ts) runs in the node as the deploy runs it over SSH: it arms the watchdog,
// writes the unconfirmed-deploy marker with the running boot's id, and switches to gen2. The reboot is
// what a reboot does to that state: the watchdog dies, /run/chimera is wiped, the node boots the
// profile's generation (gen2), and the kernel's boot id changes. The real boot id cannot change here,
// so the agent reads it from a file (--boot-id-file) that starts as a copy of the real one, which the
// deploy script reads, and is rewritten at the "reboot".
import { beforeAll, describe, expect, test } from "bun:test"
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { activateScript, confirmScript } from "../control/domain/activation.ts"
import type { AgentReport } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { BOOT_ID_FILE, UNCONFIRMED_DEPLOY_MARKER } from "../protocol/unconfirmed-deploy.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { BOOTED_SYSTEM, createTestNode, type TestNode } from "../tests/support/test-node.ts"
import { waitFor } from "../tests/support/wait.ts"

const MAIN = join(import.meta.dir, "main.ts")

let gen1: StorePath
let gen2: StorePath
let gen3: StorePath

beforeAll(async () => {
  ;[gen1, gen2, gen3] = await Promise.all([
    buildTestSystem(1, { tag: "bootcheck" }),
    buildTestSystem(2, { tag: "bootcheck" }),
    buildTestSystem(3, { tag: "bootcheck" }),
  ])
})

/** A standalone agent with no desired closure: only the boot check can move the node. */
async function runAgentOnce(node: TestNode, bootIdFile: string) {
  const stateDir = join(node.dir, "state")
  const proc = node.spawn(
    [process.execPath, MAIN, "--node-id", node.name, "--state-dir", stateDir, "--boot-id-file", bootIdFile],
    { env: { CHIMERA_URL: "", CHIMERA_JOIN_TOKEN: "" } },
  )
  let log = ""
  const drained = (async () => {
    if (!(proc.stderr instanceof ReadableStream)) return
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) log += chunk
  })()
  // The boot check runs before the agent says it started.
  await waitFor(
    "the agent started",
    async () => log,
    (l) => l.includes('"msg":"started"') || proc.exitCode !== null,
  )
  proc.kill("SIGTERM")
  await proc.exited
  await drained
  const spool = Bun.file(join(stateDir, "spool.jsonl"))
  const reports: AgentReport[] = (await spool.exists())
    ? (await spool.text())
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((r) => "seq" in r)
    : []
  return { log, reports }
}

/** A push deploy of gen2, activated and left unconfirmed (its watchdog armed for ten minutes). */
async function deployUnconfirmed(node: TestNode, deployId: string) {
  const script = activateScript({ deployId, closure: gen2, isSystem: true, confirmTimeoutSeconds: 600 })
  const r = await node.exec(["sh", "-c", script])
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) })
  expect(r.stdout).toContain("activated")
}

/** What a reboot does to the deploy's state: watchdog gone, /run wiped, the profile's system booted. */
async function reboot(node: TestNode, bootIdFile: string, deployId: string) {
  await node.exec(["pkill", "-f", `/run/chimera/deploys/${deployId}/watchdog`])
  await node.exec(["rm", "-rf", "/run/chimera"])
  await node.exec(["ln", "-sfn", gen2, BOOTED_SYSTEM])
  await Bun.write(bootIdFile, `${randomUUID()}\n`)
}

const marker = (node: TestNode) => node.exec(["cat", UNCONFIRMED_DEPLOY_MARKER])

describe("a reboot inside a deploy's confirm window", () => {
  test("the agent leaves a deploy of this boot alone, and rolls it back after a reboot, reporting it", async () => {
    await using node = await createTestNode({ name: "boot-rollback", boot: gen1 })
    const bootIdFile = join(node.dir, "boot_id")
    await Bun.write(bootIdFile, readFileSync(BOOT_ID_FILE, "utf8"))
    const deployId = `d-${Date.now()}`
    await deployUnconfirmed(node, deployId)
    expect((await marker(node)).stdout).toContain(`unconfirmed=${gen2}`)
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })

    // Same boot (the switch restarted the agent, say): the watchdog decides, not the agent.
    const sameBoot = await runAgentOnce(node, bootIdFile)
    expect(sameBoot.log).toContain("still in its confirm window")
    expect(sameBoot.reports.filter((r) => r.type === "boot.rolled-back")).toEqual([])
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })

    await reboot(node, bootIdFile, deployId)
    const afterReboot = await runAgentOnce(node, bootIdFile)
    expect(await node.links()).toMatchObject({ profile: gen1, current: gen1 })
    const rolled = afterReboot.reports.filter((r) => r.type === "boot.rolled-back")
    expect(rolled.map((r) => r.data)).toEqual([{ unconfirmed: gen2, restored: gen1, success: true }])
    expect((await marker(node)).code).not.toBe(0)

    // And once done, a later start changes nothing.
    const again = await runAgentOnce(node, bootIdFile)
    expect(again.reports.filter((r) => r.type === "boot.rolled-back")).toHaveLength(1)
    expect(await node.links()).toMatchObject({ profile: gen1, current: gen1 })
  }, 180_000)

  test("a confirmed deploy leaves no marker: after a reboot the agent keeps the new generation", async () => {
    await using node = await createTestNode({ name: "boot-confirmed", boot: gen1 })
    const bootIdFile = join(node.dir, "boot_id")
    await Bun.write(bootIdFile, readFileSync(BOOT_ID_FILE, "utf8"))
    const deployId = `d-${Date.now()}`
    await deployUnconfirmed(node, deployId)
    const confirmed = await node.exec(["sh", "-c", confirmScript(deployId, true)])
    expect(confirmed.stdout.trim()).toBe(gen2)
    expect((await marker(node)).code).not.toBe(0)
    await reboot(node, bootIdFile, deployId)
    const afterReboot = await runAgentOnce(node, bootIdFile)
    expect(afterReboot.reports.filter((r) => r.type === "boot.rolled-back")).toEqual([])
    expect(afterReboot.log).not.toContain("rolling back")
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })
  }, 180_000)

  test("a marker naming a system that is not one of the profile's generations is ignored", async () => {
    await using node = await createTestNode({ name: "boot-planted", boot: gen1 })
    await node.switchTo(gen2)
    const bootIdFile = join(node.dir, "boot_id")
    await Bun.write(bootIdFile, `${randomUUID()}\n`)
    const planted = `boot_id=${randomUUID()}\ndeploy=planted\nunconfirmed=${gen2}\nprevious=${gen3}\n`
    const w = await node.exec(
      ["sh", "-c", 'umask 077; mkdir -p "$(dirname "$1")"; printf %s "$2" > "$1"', "sh"].concat([
        UNCONFIRMED_DEPLOY_MARKER,
        planted,
      ]),
    )
    expect(w.code).toBe(0)
    const started = await runAgentOnce(node, bootIdFile)
    expect(started.log).toContain("not a generation of the profile")
    expect(started.reports.filter((r) => r.type === "boot.rolled-back")).toEqual([])
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })
  }, 180_000)

  test("a rollback cut short after its switch (the agent restarted by it) is reported at the next start", async () => {
    await using node = await createTestNode({ name: "boot-cutshort", boot: gen1 })
    const bootIdFile = join(node.dir, "boot_id")
    await Bun.write(bootIdFile, readFileSync(BOOT_ID_FILE, "utf8"))
    const deployId = `d-${Date.now()}`
    await deployUnconfirmed(node, deployId)
    await reboot(node, bootIdFile, deployId)
    // What the interrupted rollback had done: profile and running system back on gen1, marker still there.
    await node.switchTo(gen1)
    const started = await runAgentOnce(node, bootIdFile)
    const rolled = started.reports.filter((r) => r.type === "boot.rolled-back")
    expect(rolled.map((r) => r.data)).toEqual([{ unconfirmed: gen2, restored: gen1, success: true }])
    expect((await marker(node)).code).not.toBe(0)
  }, 180_000)
})
