// The links a check read and the phase it reached are seen together: a heartbeat or a metrics scrape
// that lands while a check is between its reads never pairs the new links with the old phase.
// Real Nix systems and real links; the store check is held open to stand in that gap.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, symlink } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { buildTestSystem } from "../tests/support/nix-fixtures.ts"
import { createNixSystem, type NixSystem } from "./nix-system.ts"
import { createReconciler } from "./reconciler.ts"
import type { ReportInput } from "./spool.ts"

setDefaultTimeout(60_000)

let dir: string
let gen1: StorePath
let gen2: StorePath
beforeAll(async () => {
  ;[gen1, gen2] = await Promise.all([buildTestSystem(1), buildTestSystem(2)])
  dir = await mkdtemp(join(tmpdir(), "chimera-reconciler-"))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

async function pointAll(to: StorePath) {
  for (const name of ["system", "current-system", "booted-system"]) {
    await rm(join(dir, name), { force: true })
    await symlink(to, join(dir, name))
  }
}

const nixOf = () =>
  createNixSystem({
    systemProfile: join(dir, "system"),
    currentSystem: join(dir, "current-system"),
    bootedSystem: join(dir, "booted-system"),
  })

/** A reconciler that wants generation 1, with auto-heal off; `phases` fills as its checks end. */
function reconcilerOn(nix: NixSystem, report: (r: ReportInput) => void = () => {}) {
  const phases: string[] = []
  const reconciler = createReconciler({
    nix,
    report,
    persistDesired() {},
    autoHeal: false,
    initialDesired: gen1,
    onPhase: (phase) => phases.push(phase),
  })
  return { reconciler, phases }
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
  const reports: { type: string; data: Record<string, unknown> }[] = []
  const { reconciler, phases } = reconcilerOn(nixOf(), (e) => reports.push(e as (typeof reports)[number]))
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
