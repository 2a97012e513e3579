// The deploy hold as both sides meet it: the shell a deploy or rollback runs on the node writes it
// (control/domain/activation.ts), the agent reads it (agent/nix-system.ts) whenever its links move.
import { describe, expect, test } from "bun:test"
import { mkdir, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createNixSystem } from "../agent/nix-system.ts"
import { DEPLOY_HOLD, writeHold } from "../control/domain/activation.ts"

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await mkdtemp(join(tmpdir(), "chimera-hold-"))
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) }
}

describe("the deploy hold, written by a deploy or rollback while the agent reads it", () => {
  // The hold is rewritten mid-rollback, right after the switch, which is just when the agent looks at
  // it (the switch moved the links it watches). A reader must see the old hold or the new, never none.
  test("a reader never finds the hold missing while it is rewritten", async () => {
    await using dir = await tempDir()
    const current = join(dir.path, "current-system")
    const hold = join(dir.path, "chimera/deploy-hold")
    await mkdir(join(dir.path, "chimera"))
    const write = writeHold(60, "rollback-1").replaceAll(DEPLOY_HOLD, hold)
    await using writer = Bun.spawn([
      "/bin/sh",
      "-c",
      `${write}; touch ${dir.path}/ready; i=0; while [ $i -lt 1000 ]; do ${write}; i=$((i+1)); done`,
    ])
    const nix = createNixSystem({
      systemProfile: join(dir.path, "profile"),
      currentSystem: current,
      bootedSystem: current,
    })
    while (!(await Bun.file(join(dir.path, "ready")).exists())) await Bun.sleep(1)
    let reads = 0
    let missing = 0
    while (writer.exitCode === null) {
      reads++
      if ((await nix.deployHoldUntil()) === 0) missing++
    }
    expect(await writer.exited).toBe(0)
    expect(reads).toBeGreaterThan(100)
    expect({ reads, missing }).toEqual({ reads, missing: 0 })
  }, 60_000)

  // Both scripts run under `set -eu` so that a step that fails stops them before the switch. A hold
  // that cannot be written must stop them too: a deploy or rollback then switches with no hold, and
  // the agent heals it away.
  test("a hold that cannot be written stops the script under set -eu", async () => {
    await using dir = await tempDir()
    const write = writeHold(60, "deploy-1").replaceAll(DEPLOY_HOLD, join(dir.path, "missing/deploy-hold"))
    const run = Bun.spawn(["/bin/sh", "-c", `set -eu\n${write}\necho switched`], { stderr: "pipe" })
    expect(await new Response(run.stdout).text()).toBe("")
    expect(await run.exited).not.toBe(0)
  })
})
