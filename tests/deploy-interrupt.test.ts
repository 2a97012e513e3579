// Ctrl-C during `chimera deploy`, at the moments that matter for the node. The CLI goes at once, and
// its SSH session with it: sshd leaves the activation running but closes its pipes. The activation used
// to be killed by SIGPIPE at the next line switch-to-configuration wrote to stderr, half way through
// the switch, and the watchdog then rolled back at once. Now the switch finishes on the node, nothing
// confirms it, and the watchdog rolls it back when the confirm timeout passes; the CLI says so, target
// by target. Real test node with real sshd and Nix, a system whose switch is slow and talks on stderr,
// the real CLI as a subprocess.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { UNCONFIRMED_DEPLOY_MARKER } from "../protocol/unconfirmed-deploy.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
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

/** `chimera deploy` of generation 2, its stderr read as it comes. */
function deploying(flags: string[]) {
  const child = Bun.spawn(
    [process.execPath, MAIN, "deploy", "--targets", node.target, "--config", configs[1]!, ...flags].concat([
      "--identity",
      bed.identityFile,
      "--known-hosts",
      bed.knownHostsFile,
    ]),
    {
      env: {
        ...process.env,
        CHIMERA_DATA_DIR: join(work, "data"),
        CHIMERA_URL: "",
        CHIMERA_TOKEN: "",
        CHIMERA_CONFIG_FILE: "",
        NO_COLOR: "1",
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
    async interrupted() {
      child.kill("SIGINT")
      const code = await child.exited
      await read
      return { code, stderr }
    },
  }
}

/** The deploy the node last ran: its state directory's files, and whether its marker is gone. */
async function lastDeploy() {
  const sh = (script: string) => node.node.exec(["sh", "-c", script])
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
      `${node.target}: activating; the switch finishes on the node without this command, and since nothing will confirm it, its watchdog then rolls it back to the previous generation 6 s later (at once if the switch fails)`,
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
    // The watchdog writes its outcome, then clears the marker, a moment after the switch back.
    const last = await waitFor("the watchdog's outcome", lastDeploy, (l) => !l.marked)
    expect(last).toMatchObject({ outcome: "rolled-back", activated: true, marked: false })
    // The deploy's hold stands until it lapses: an agent there neither heals nor reports meanwhile.
    expect(last.hold).toBe(last.id)
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
