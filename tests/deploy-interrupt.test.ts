// Ctrl-C during `chimera deploy`, at the moments that matter for the node. The CLI goes at once, and
// its SSH session with it: sshd leaves the activation running but closes its pipes. The activation used
// to be killed by SIGPIPE at the next line switch-to-configuration wrote to stderr, half way through
// the switch, and the watchdog then rolled back at once. Now the switch finishes on the node, nothing
// confirms it, and the watchdog rolls it back when the confirm timeout passes; the CLI says so, target
// by target. Ctrl-C starts no further target, and a target confirmed whose desired closure is on its
// way to the control plane is waited for (a bounded wait, said so), lest its agent switch it back once
// the deploy's hold lapses. Real test nodes with real sshd and Nix (and real agents enrolled with a
// control plane reached through a loopback gate that holds the publish), a system whose switch is slow
// and talks on stderr, the real CLI as a subprocess.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { INTERRUPT_GRACE_SECONDS } from "../control/cli/interrupt.ts"
import type { StorePath } from "../protocol/ids.ts"
import { UNCONFIRMED_DEPLOY_MARKER } from "../protocol/unconfirmed-deploy.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { type PublishGate, publishGate } from "./support/publish-gate.ts"
import { waitForSystem } from "./support/test-node.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")
/** Seconds each system's switch takes, writing to stderr before and after. */
const SLOW = 3

let work: string
let bed: Testbed
let node: TestbedNode
const gens: StorePath[] = []
const configs: string[] = []

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-deploy-interrupt-"))
  for (const g of [1, 2]) {
    gens.push(await buildTestSystem(g, { tag: "deploy-interrupt", slowSwitch: SLOW }))
    const path = join(work, `gen${g}.nix`)
    await writeFile(
      path,
      `import ${TEST_SYSTEM} { generation = "${g}"; tag = "deploy-interrupt"; slowSwitch = ${SLOW}; }\n`,
    )
    configs.push(path)
  }
  bed = await createTestbed({ nodes: 1, boot: gens[0], prefix: "dint" })
  node = bed.nodes[0] as TestbedNode
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await rm(work, { recursive: true, force: true })
})

/** `chimera deploy` of generation 2, its stderr read as it comes; to `node` unless told a testbed's targets. */
function deploying(flags: string[], on: { bed: Testbed; targets: string; env: Record<string, string> } | null = null) {
  const to = on ?? { bed, targets: node.target, env: {} }
  const child = Bun.spawn(
    [process.execPath, MAIN, "deploy", "--targets", to.targets, "--config", configs[1]!, ...flags].concat([
      "--identity",
      to.bed.identityFile,
      "--known-hosts",
      to.bed.knownHostsFile,
    ]),
    {
      env: {
        ...process.env,
        CHIMERA_DATA_DIR: join(work, "data"),
        CHIMERA_URL: "",
        CHIMERA_TOKEN: "",
        CHIMERA_CONFIG_FILE: "",
        NO_COLOR: "1",
        ...to.env,
      },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    },
  )
  let stderr = ""
  const read = (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of child.stderr) stderr += decoder.decode(chunk, { stream: true })
  })()
  return {
    child,
    said: (text: string) =>
      waitFor(
        `the CLI to say ${JSON.stringify(text)}`,
        async () => stderr,
        (s) => s.includes(text),
      ),
    /** Its exit code and all it said, once it ends. */
    async ended() {
      const code = await child.exited
      await read
      return { code, stderr }
    },
    interrupted() {
      child.kill("SIGINT")
      return this.ended()
    },
  }
}

/** The deploy the node last ran: its state directory's files, and whether its marker is gone. */
async function lastDeploy(on: TestbedNode = node) {
  const sh = (script: string) => on.node.exec(["sh", "-c", script])
  const dir = (await sh("ls -td /run/chimera/deploys/*/ | head -1")).stdout.trim()
  return {
    outcome: (await sh(`cat ${dir}outcome 2>/dev/null`)).stdout.trim(),
    activated: (await sh(`test -e ${dir}activated`)).code === 0,
    marked: (await sh(`test -e ${UNCONFIRMED_DEPLOY_MARKER}`)).code === 0,
    hold: (await sh("cut -d' ' -f2 /run/chimera/deploy-hold")).stdout.trim(),
    id: dir.split("/").at(-2) ?? "",
  }
}

describe("Ctrl-C during a deploy", () => {
  test("mid-activation: the switch finishes on the node, then its watchdog rolls it back when the confirm timeout passes, as the CLI says", async () => {
    const d = deploying(["--confirm-timeout", "6", "--health-timeout", "2"])
    // The profile has moved and switch-to-configuration has begun (and written its first line).
    await waitFor(
      "the switch to begin",
      () => node.node.links(),
      (l) => l.profile === gens[1],
      60_000,
    )
    await Bun.sleep(500)
    const t0 = performance.now()
    const { code, stderr } = await d.interrupted()
    expect(code).toBe(130)
    expect(stderr).toContain(
      `${node.target}: activating; the switch finishes on the node without this command (or is stopped there 300 s after it began), and since nothing will confirm it, its watchdog then rolls it back to the previous generation 6 s later (at once if the switch fails or is stopped)`,
    )
    // Before: switch-to-configuration died of SIGPIPE at its next stderr line, so the node never ran
    // generation 2; the watchdog found the activating shell gone and rolled back at once.
    await waitFor(
      "the switch to finish on the node",
      () => node.node.links(),
      (l) => l.current === gens[1],
      2 * SLOW * 1000,
    )
    await waitForSystem(node.node, gens[0]!, "the watchdog's rollback", (6 + 2 * SLOW + 5) * 1000)
    // Not before the confirm timeout had passed since the switch ended.
    expect(performance.now() - t0).toBeGreaterThan(6000)
    // The watchdog writes its outcome, then clears the marker and lifts the deploy's hold, a moment after
    // the switch back: the node runs its previous generation again, which an agent there may keep.
    const last = await waitFor("the watchdog's outcome", lastDeploy, (l) => !l.marked && l.hold === "")
    expect(last).toMatchObject({ outcome: "rolled-back", activated: true, marked: false })
  })

  test("after activation, before the confirm: the node rolls back when the confirm timeout passes, as the CLI says", async () => {
    const d = deploying(["--confirm-timeout", "10", "--health-timeout", "8", "--health-cmd", "sleep 30"])
    await d.said(`${node.target}: activate: activated`)
    expect((await node.node.links()).current).toBe(gens[1]!)
    const { code, stderr } = await d.interrupted()
    expect(code).toBe(130)
    expect(stderr).toMatch(
      new RegExp(
        `${node.target}: activated, not confirmed; its watchdog rolls it back to generation 1 in about (9|10) s, unless it was rolled back already`,
      ),
    )
    await waitForSystem(node.node, gens[0]!, "the watchdog's rollback", (10 + SLOW + 5) * 1000)
    expect(await waitFor("the watchdog's outcome", lastDeploy, (l) => !l.marked)).toMatchObject({
      outcome: "rolled-back",
      activated: true,
    })
  })
})

describe("Ctrl-C during a deploy to nodes whose agents a control plane steers", () => {
  let cp: TestControlPlane
  let fleet: Testbed
  let gate: PublishGate
  let first: TestbedNode
  let second: TestbedNode

  beforeAll(async () => {
    cp = await startInProcess()
    const tokens: string[] = []
    for (const _ of [1, 2]) {
      const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
      tokens.push(((await res.json()) as { token: string }).token)
    }
    fleet = await createTestbed({
      nodes: 2,
      boot: gens[0],
      prefix: "dpub",
      agent: { controlUrl: cp.url, joinTokens: tokens, extraArgs: ["--drift-interval", "1"] },
    })
    first = fleet.nodes[0] as TestbedNode
    second = fleet.nodes[1] as TestbedNode
    for (const n of fleet.nodes)
      await waitFor(
        `${n.name} enrolled`,
        async () => (await cp.api(`/api/nodes/${n.name}`)).status,
        (s) => s === 200,
        60_000,
      )
    gate = publishGate(cp.url)
  }, 120_000)

  afterAll(async () => {
    gate?.stop()
    await fleet?.stop()
    await cp?.stop()
  })

  const through = (targets: string) => ({
    bed: fleet,
    targets,
    env: { CHIMERA_URL: gate.url, CHIMERA_TOKEN: cp.adminToken, CHIMERA_CONFIG_FILE: fleet.configFile },
  })
  const desired = async (n: TestbedNode) =>
    ((await (await cp.api(`/api/nodes/${n.name}`)).json()) as { desiredPath: string | null }).desiredPath

  test("--parallel 1, during the first target's activation: the second never starts, and is said to be unchanged", async () => {
    const d = deploying(
      ["--parallel", "1", "--confirm-timeout", "6", "--health-timeout", "2"],
      through(`${first.name},${second.name}`),
    )
    await waitFor(
      "the first target's switch to begin",
      () => first.node.links(),
      (l) => l.profile === gens[1],
      60_000,
    )
    await Bun.sleep(500)
    const { code, stderr } = await d.interrupted()
    expect(code).toBe(130)
    expect(stderr).toContain(`${first.name}: activating; the switch finishes on the node without this command`)
    expect(stderr).toContain(`  ${second.name}: not activated, unchanged\n`)
    // The first goes back by its watchdog; the second was never touched, not even planned for a while.
    await waitForSystem(first.node, gens[0]!, "the watchdog's rollback", (6 + 2 * SLOW + 5) * 1000)
    await waitFor(
      "the watchdog's outcome",
      () => lastDeploy(first),
      (l) => !l.marked,
    )
    await Bun.sleep(2000)
    expect(await second.node.links()).toMatchObject({ profile: gens[0], current: gens[0] })
    expect((await second.node.exec(["sh", "-c", "ls /run/chimera/deploys 2>/dev/null | wc -l"])).stdout.trim()).toBe(
      "0",
    )
  })

  test("while a confirmed target's desired closure is being published: it waits for the publish, says so, exits 130, and the node keeps the new closure", async () => {
    const d = deploying(["--confirm-timeout", "10", "--health-timeout", "2"], through(first.name))
    await gate.arrived()
    // Confirmed on generation 2: only the publish is left.
    expect((await first.node.links()).current).toBe(gens[1]!)
    d.child.kill("SIGINT")
    // Released once the CLI has said it waits: a release before the signal is handled would let the
    // deploy end as if never interrupted.
    await d.said("Ctrl-C again to leave now")
    gate.release()
    const { code, stderr } = await d.ended()
    // Before: it left at once, its publish dropped, saying the agent would switch the node back.
    expect(code).toBe(130)
    expect(stderr).toContain(
      `interrupted: no further target starts or is sent a confirmation; waiting for ${first.name}`,
    )
    expect(stderr).toContain(`(up to ${INTERRUPT_GRACE_SECONDS} s; Ctrl-C again to leave now)`)
    expect(stderr).toContain(
      `  ${first.name}: deployed, confirmed on ${gens[1]}; the control plane has it as its desired closure, so its agent keeps it\n`,
    )
    expect(await desired(first)).toBe(gens[1]!)
    // With the deploy's hold lifted, the agent heals toward its desired closure: the new one.
    await first.node.exec(["rm", "-f", "/run/chimera/deploy-hold"])
    const seen = new Set<string>()
    for (const deadline = performance.now() + 5000; performance.now() < deadline; await Bun.sleep(100))
      seen.add((await first.node.links()).current ?? "none")
    expect([...seen]).toEqual([gens[1]!])
  })

  test("a target whose health checks pass during the wait is not confirmed: its watchdog rolls it back", async () => {
    // The first back on generation 1, by its agent, which the control plane now steers there.
    await cp.api(`/api/nodes/${first.name}/desired`, { method: "PUT", body: JSON.stringify({ closure: gens[0] }) })
    await waitForSystem(first.node, gens[0]!, "the agent's heal to generation 1", 30_000)
    // The second's health check takes a few seconds, and leaves a mark when it passes.
    await second.node.exec(["touch", "/run/slow-health"])
    const health =
      "if [ -e /run/slow-health ]; then touch /run/slow-health-started; sleep 4; touch /run/slow-health-passed; fi"
    const d = deploying(
      ["--confirm-timeout", "12", "--health-timeout", "8", "--health-cmd", health],
      through(`${first.name},${second.name}`),
    )
    const mark = async (name: string) => (await second.node.exec(["test", "-e", `/run/slow-health-${name}`])).code
    // The first confirmed and its publish held, the second in its health check (not still activating).
    await gate.arrived()
    await waitFor(
      "the second's health check to start",
      () => mark("started"),
      (c) => c === 0,
    )
    d.child.kill("SIGINT")
    await d.said("Ctrl-C again to leave now")
    // Held until the second's health check has passed, and a confirmation would have been answered.
    await waitFor(
      "the second's health check to pass",
      () => mark("passed"),
      (c) => c === 0,
    )
    await Bun.sleep(2000)
    gate.release()
    const { code, stderr } = await d.ended()
    expect(code).toBe(130)
    expect(stderr).toContain(`waiting for ${first.name} to answer its confirmation`)
    expect(stderr).toContain(
      `  ${first.name}: deployed, confirmed on ${gens[1]}; the control plane has it as its desired closure`,
    )
    expect(stderr).toMatch(
      new RegExp(
        `  ${second.name}: activated, not confirmed; its watchdog rolls it back to generation 1 in about \\d+ s`,
      ),
    )
    expect(await desired(first)).toBe(gens[1]!)
    // Never confirmed: its watchdog rolls it back when the confirm timeout passes.
    await waitForSystem(second.node, gens[0]!, "the second's watchdog rollback", (12 + SLOW + 5) * 1000)
    expect(
      await waitFor(
        "the watchdog's outcome",
        () => lastDeploy(second),
        (l) => !l.marked,
      ),
    ).toMatchObject({
      outcome: "rolled-back",
    })
  })
})
