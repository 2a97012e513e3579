// Ctrl-C during `chimera rollback`, at the moment that matters: the node has switched back and the
// rolled-back closure is on its way to the control plane as the node's desired one. The CLI used to
// die of the signal without a word, and once the rollback's hold lapsed the node's agent switched it
// forward again to the old desired closure: the rollback silently undone. Now it finishes that publish
// (a bounded wait, said so), says where each target was left, and exits 130. Real agent in a real test
// node, real sshd and Nix, the real CLI as a subprocess; the control plane is reached through a
// loopback gate that holds the set-desired until the test lets it through (or never does).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { INTERRUPT_GRACE_SECONDS } from "../control/cli/interrupt.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { type PublishGate, publishGate } from "./support/publish-gate.ts"
import { streamText } from "./support/stream.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(240_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")
const WATCH_MS = 10_000

let work: string
let cp: TestControlPlane
let bed: Testbed
let node: TestbedNode
let gate: PublishGate
const gens: StorePath[] = []
const configs: string[] = []

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-rollback-interrupt-"))
  for (const g of [1, 2]) {
    gens.push(await buildTestSystem(g, { tag: "rollback-interrupt" }))
    const path = join(work, `gen${g}.nix`)
    await writeFile(path, `import ${TEST_SYSTEM} { generation = "${g}"; tag = "rollback-interrupt"; }\n`)
    configs.push(path)
  }
  cp = await startInProcess()
  const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
  const token = ((await res.json()) as { token: string }).token
  bed = await createTestbed({
    nodes: 1,
    boot: gens[0],
    prefix: "intr",
    agent: { controlUrl: cp.url, joinTokens: [token], extraArgs: ["--drift-interval", "1"] },
  })
  node = bed.nodes[0] as TestbedNode
  await waitFor(
    `${node.name} enrolled`,
    async () => (await cp.api(`/api/nodes/${node.name}`)).status,
    (s) => s === 200,
    60_000,
  )
  gate = publishGate(cp.url)
}, 240_000)

afterAll(async () => {
  gate?.stop()
  await bed?.stop()
  await cp?.stop()
  await rm(work, { recursive: true, force: true })
})

const view = async () =>
  (await (await cp.api(`/api/nodes/${node.name}`)).json()) as { status: string; desiredPath: string | null }
const env = (url: string) => ({
  CHIMERA_DATA_DIR: join(work, "data"),
  CHIMERA_URL: url,
  CHIMERA_TOKEN: cp.adminToken,
  CHIMERA_CONFIG_FILE: bed.configFile,
  NO_COLOR: "1",
})
const ssh = () => ["--identity", bed.identityFile, "--known-hosts", bed.knownHostsFile]

/** The node on generation 2, which the control plane has as desired. */
async function onGeneration2() {
  const d = await run([process.execPath, MAIN, "deploy", "--targets", node.name, "--config", configs[1]!, ...ssh()], {
    env: env(cp.url),
  })
  expect({ code: d.code, stderr: d.stderr }).toMatchObject({ code: 0 })
  expect((await view()).desiredPath).toBe(gens[1]!)
}

/** Starts `chimera rollback` through the gate and sends SIGINT once its set-desired is held there. */
async function interruptedRollback() {
  const child = Bun.spawn([process.execPath, MAIN, "rollback", "--targets", node.name, ...ssh()], {
    env: { ...process.env, ...env(gate.url) },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  await gate.arrived()
  // The node has switched back: only the publish is left.
  expect((await node.node.links()).current).toBe(gens[0]!)
  child.kill("SIGINT")
  return { child, stderr: streamText(child.stderr), killedAt: performance.now() }
}

/** Everything the child writes on stderr until it ends. */
const rest = async (stderr: ReturnType<typeof streamText>) => {
  await stderr.until(() => false)
  return stderr.text
}

/** With the rollback's hold lifted, the node's desired closure alone keeps it on `closure`. */
async function staysOn(closure: StorePath) {
  await node.node.exec(["rm", "-f", "/run/chimera/deploy-hold"])
  const deadline = performance.now() + WATCH_MS
  const seen = new Set<string>()
  while (performance.now() < deadline) {
    seen.add((await node.node.links()).current ?? "none")
    await Bun.sleep(100)
  }
  expect([...seen]).toEqual([closure])
}

describe("Ctrl-C during a rollback", () => {
  test("after the switch, before the publish: it finishes the publish, says so, exits 130, and the rollback sticks", async () => {
    await onGeneration2()
    const { child, stderr } = await interruptedRollback()
    // Released once the CLI has said it waits: a release before the signal is handled would let the
    // rollback end as if never interrupted.
    await stderr.until((text) => text.includes("Ctrl-C again to leave now"))
    gate.release()
    const [code, err] = await Promise.all([child.exited, rest(stderr)])
    // Before: 130 too (the signal), stderr empty, and the node back on generation 2 once the hold lapsed.
    expect(code).toBe(130)
    expect(err).toContain(`interrupted: no further target starts; waiting for ${node.name} to answer`)
    expect(err).toContain(`(up to ${INTERRUPT_GRACE_SECONDS} s; Ctrl-C again to leave now)`)
    expect(err).toContain("the rollback is not recorded. Where each target is:")
    expect(err).toContain(
      `  ${node.name}: rolled back to generation 1 (${gens[0]}); the control plane has it as desired, so its agent keeps it`,
    )
    expect((await view()).desiredPath).toBe(gens[0]!)
    await staysOn(gens[0]!)
  })

  test("when the control plane does not answer in time, it names the node's state and the command that keeps it", async () => {
    await onGeneration2()
    const { child, stderr, killedAt } = await interruptedRollback()
    const [code, err] = await Promise.all([child.exited, rest(stderr)])
    expect(code).toBe(130)
    // The grace, and not much more: measured from the signal, not from a start that may be slow.
    expect(performance.now() - killedAt).toBeLessThan((INTERRUPT_GRACE_SECONDS + 5) * 1000)
    const command = `chimera nodes set-desired ${node.name} ${gens[0]}`
    expect(err).toContain(
      `  ${node.name}: rolled back to generation 1 (${gens[0]}), but the control plane has not answered; its agent switches it forward again 60 s after the switch unless the control plane has it as desired: ${command}`,
    )
    // What it says to run, run: the rollback sticks.
    const [, ...args] = command.split(" ")
    const set = await run([process.execPath, MAIN, ...args], { env: env(cp.url) })
    expect({ code: set.code, stderr: set.stderr }).toMatchObject({ code: 0 })
    await staysOn(gens[0]!)
  })
})

// A system whose activation takes a few seconds and talks on stderr, as NixOS's does.
const SLOW_SYSTEM = (generation: number) => `derivation {
  name = "rollback-interrupt-slow-system-${generation}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  args = [ "-c" ''
    mkdir -p $out/bin
    cat > $out/bin/switch-to-configuration <<SCRIPT
    #!/bin/sh
    echo "activating the configuration..." >&2
    sleep 3
    echo "setting up /etc..." >&2
    ln -sfn $out /run/current-system
    echo "activated"
    SCRIPT
    chmod +x $out/bin/switch-to-configuration
  '' ];
}
`

let slowBuilt: Promise<StorePath[]> | null = null
/** Generations 1 and 2 of the slow system, built once for the tests that need them. */
const slowSystems = () => {
  slowBuilt ??= (async () => {
    const slow: StorePath[] = []
    for (const g of [1, 2]) {
      const file = join(work, `slow${g}.nix`)
      await writeFile(file, SLOW_SYSTEM(g))
      const out = await run(["nix-build", file, "--no-out-link"], { env: { NIX_CONFIG: "substituters =" } })
      slow.push(out.stdout.trim() as StorePath)
    }
    return slow
  })()
  return slowBuilt
}

/** `chimera rollback --targets target` on a testbed node with no agent, interrupted once its switch began. */
async function interruptedSwitch(plain: Testbed, n: TestbedNode, target: string, slow: StorePath[], extra = {}) {
  await n.node.switchTo(slow[1]!)
  const child = Bun.spawn(
    [process.execPath, MAIN, "rollback", "--targets", target, "--identity", plain.identityFile].concat([
      "--known-hosts",
      plain.knownHostsFile,
    ]),
    {
      env: { ...process.env, ...env(""), CHIMERA_TOKEN: "", CHIMERA_CONFIG_FILE: "", ...extra },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    },
  )
  // The profile has moved and the activation has begun.
  await waitFor(
    "the switch to begin",
    () => n.node.links(),
    (l) => l.profile === slow[0],
    30_000,
  )
  await Bun.sleep(500)
  child.kill("SIGINT")
  const [code, err] = await Promise.all([child.exited, new Response(child.stderr).text()])
  return { code, err }
}

test("Ctrl-C during the switch: the switch still completes on the node, and the CLI says it will", async () => {
  const slow = await slowSystems()
  await using plain = await createTestbed({ nodes: 1, boot: slow[0], prefix: "slow" })
  const n = plain.nodes[0] as TestbedNode
  const { code, err } = await interruptedSwitch(plain, n, n.target, slow)
  expect(code).toBe(130)
  expect(err).toContain(
    `${n.target}: no answer yet; its rollback may be switching it, and then finishes there without this command`,
  )
  // Before: the activation died of SIGPIPE at its next line, leaving the node running generation 2
  // on a profile pointing at 1.
  await waitFor(
    "the activation to finish",
    () => n.node.links(),
    (l) => l.current === slow[0],
    15_000,
  )
})

test("a [fleet.nodes] target the control plane has no node for is said to have no agent to undo it", async () => {
  const slow = await slowSystems()
  await using plain = await createTestbed({ nodes: 1, boot: slow[0], prefix: "bare" })
  const n = plain.nodes[0] as TestbedNode
  // A control plane is configured, but no agent of this name ever enrolled: the publish is a 404.
  const { code, err } = await interruptedSwitch(plain, n, n.name, slow, {
    CHIMERA_URL: cp.url,
    CHIMERA_TOKEN: cp.adminToken,
    CHIMERA_CONFIG_FILE: plain.configFile,
  })
  expect(code).toBe(130)
  expect(err).toContain(`interrupted: no further target starts; waiting for ${n.name} to answer`)
  // Before: "…, but the control plane has not answered; its agent switches it forward again …:
  // chimera nodes set-desired NAME PATH", for a node with no agent, which set-desired refuses.
  expect(err).toContain(
    `  ${n.name}: rolled back to generation 1 (${slow[0]}); the control plane has no node ${n.name} enrolled, so no agent switches it forward\n`,
  )
  expect(err).not.toContain("set-desired")
})
