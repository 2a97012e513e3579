// A rollback sticks on nodes with agents: `chimera rollback` (back one generation, and to a named
// one) makes the generation it rolled back to the node's desired closure on the control plane, through
// its API (audited as a set-desired), and the node's agent keeps it. Real agents in real test nodes,
// real sshd, real Nix profiles, the real CLI as a subprocess; "keeps it" is watched for 30 s: the
// node's /run/current-system and the control plane's events, with no heal in between.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { waitForSystem } from "./support/test-node.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(240_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")
/** Far longer than an agent takes to notice and heal drift (tens of milliseconds). */
const WATCH_MS = 30_000

let work: string
let cp: TestControlPlane
let bed: Testbed
const gens: StorePath[] = []
const configs: string[] = []

interface NodeView {
  status: string
  desiredPath: string | null
  currentPath: string | null
}
interface EventRow {
  id: number
  nodeId: string | null
  type: string
  at: string
  data: Record<string, unknown>
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-rollback-agent-"))
  for (const g of [1, 2, 3]) {
    gens.push(await buildTestSystem(g, { tag: "rollback" }))
    const path = join(work, `gen${g}.nix`)
    await writeFile(path, `import ${TEST_SYSTEM} { generation = "${g}"; tag = "rollback"; }\n`)
    configs.push(path)
  }
  cp = await startInProcess()
  const tokens: string[] = []
  for (let i = 0; i < 2; i++) {
    const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
    tokens.push(((await res.json()) as { token: string }).token)
  }
  bed = await createTestbed({
    nodes: 2,
    boot: gens[0],
    prefix: "back",
    // Polling every second as well as watching the links: a disagreement would show within a second.
    agent: { controlUrl: cp.url, joinTokens: tokens, extraArgs: ["--drift-interval", "1"] },
  })
  for (const n of bed.nodes) {
    await waitFor(
      `${n.name} enrolled`,
      async () => (await cp.api(`/api/nodes/${n.name}`)).status,
      (s) => s === 200,
      60_000,
    )
    await cp.api(`/api/nodes/${n.name}/desired`, { method: "PUT", body: JSON.stringify({ closure: gens[0] }) })
    await waitFor(
      `${n.name} healthy on generation 1`,
      () => view(n),
      (v) => v.status === "healthy",
      60_000,
    )
  }
}, 240_000)

afterAll(async () => {
  await bed?.stop()
  await cp?.stop()
  await rm(work, { recursive: true, force: true })
})

const view = async (n: TestbedNode) => (await (await cp.api(`/api/nodes/${n.name}`)).json()) as NodeView

async function chimera(args: string[]) {
  return run([process.execPath, MAIN, ...args, "--identity", bed.identityFile, "--known-hosts", bed.knownHostsFile], {
    env: {
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
      CHIMERA_CONFIG_FILE: bed.configFile,
      NO_COLOR: "1",
    },
  })
}

async function events(n: TestbedNode, after: number): Promise<EventRow[]> {
  const res = await cp.api(`/api/events?node=${n.name}&after=${after}&limit=1000`)
  return ((await res.json()) as { events: EventRow[] }).events
}

/** The newest event's id (the log is paged oldest first). */
async function lastEventId(): Promise<number> {
  let last = 0
  for (;;) {
    const res = await cp.api(`/api/events?after=${last}&limit=1000`)
    const page = ((await res.json()) as { events: EventRow[] }).events
    if (page.length === 0) return last
    last = page.at(-1)?.id ?? last
  }
}

/** Why a node moved: its events since the rollback and what its agent said about desired closures and heals. */
function explain(n: TestbedNode, seen: EventRow[]) {
  const lines = (n.agent?.log() ?? "").split("\n").filter((l) => /desired|heal|hold|command|drift/.test(l))
  const evs = seen.map((e) => `${e.at} ${e.type} ${JSON.stringify(e.data)}`)
  console.error(`${n.name} moved after the rollback:\n${evs.join("\n")}\n--- agent log ---\n${lines.join("\n")}`)
}

/** Samples the node's running system until WATCH_MS pass; every sample must be `closure`. */
async function staysOn(n: TestbedNode, closure: StorePath): Promise<string[]> {
  const seen = new Set<string>()
  const deadline = performance.now() + WATCH_MS
  while (performance.now() < deadline) {
    const links = await n.node.links()
    seen.add(`${links.profile} ${links.current}`)
    await Bun.sleep(100)
  }
  expect([...seen]).toEqual([`${closure} ${closure}`])
  return [...seen]
}

describe("rollback on nodes with agents", () => {
  test("rolled back (previous, and --generation N), each node stays there and its desired closure follows", async () => {
    const [back1, back2] = bed.nodes as [TestbedNode, TestbedNode]
    // back-1 goes 1 → 2 and back one; back-2 goes 1 → 2 → 3 and then to generation 1 by number.
    const d2 = await chimera(["deploy", "--targets", `${back1.name},${back2.name}`, "--config", configs[1]!])
    expect({ code: d2.code, stderr: d2.stderr }).toMatchObject({ code: 0 })
    const d3 = await chimera(["deploy", "--targets", back2.name, "--config", configs[2]!])
    expect({ code: d3.code, stderr: d3.stderr }).toMatchObject({ code: 0 })
    expect((await view(back1)).desiredPath).toBe(gens[1]!)
    expect((await view(back2)).desiredPath).toBe(gens[2]!)

    const before = await lastEventId()
    const previous = await chimera(["rollback", "--targets", back1.name])
    expect({ code: previous.code, out: previous.stdout, err: previous.stderr }).toMatchObject({ code: 0 })
    expect(previous.stdout).toContain(`${back1.name}  rolled back  1           ${gens[0]}`)
    expect(previous.stderr).toContain(`desired closure set on the control plane for ${back1.name}`)
    const named = await chimera(["rollback", "--targets", back2.name, "--generation", "1", "--json"])
    expect({ code: named.code, err: named.stderr }).toEqual({ code: 0, err: "" })
    expect((JSON.parse(named.stdout) as { results: { generation: number; path: string }[] }).results).toMatchObject([
      { generation: 1, path: gens[0] },
    ])

    // The control plane has the rolled-back closures as desired, and each node is healthy on it.
    for (const n of [back1, back2])
      await waitFor(
        `${n.name} healthy with generation 1 desired`,
        () => view(n),
        (v) => v.status === "healthy" && v.desiredPath === gens[0] && v.currentPath === gens[0],
        60_000,
      )
    // The rollback holds each agent off for a minute after it; lifted here, so that what keeps the
    // nodes where they are is their desired closure alone. Both are watched at once: neither moves,
    // and neither agent heals or sees drift.
    for (const n of [back1, back2]) expect((await n.node.exec(["rm", "/run/chimera/deploy-hold"])).code).toBe(0)
    await Promise.all([staysOn(back1, gens[0]!), staysOn(back2, gens[0]!)])
    for (const n of [back1, back2]) {
      const seen = await events(n, before)
      const types = seen.map((e) => e.type)
      expect(types).toContain("desired.changed")
      const moves = types.filter((t) => t.startsWith("heal.") || t === "drift.detected")
      if (moves.length > 0) explain(n, seen)
      expect(moves).toEqual([])
      expect(await view(n)).toMatchObject({ status: "healthy", desiredPath: gens[0], currentPath: gens[0] })
    }

    // Each rollback's new desired closure went through the API, so it is audited like any set-desired.
    const audit = (await (await cp.api("/api/audit?limit=1000")).json()) as {
      entries: { action: string; nodeId: string | null; result: string }[]
    }
    const setDesired = audit.entries.filter((e) => e.action.includes("desired") && e.result === "ok")
    // Each node: the test's own set-desired, one per deploy it was in, and its rollback's.
    const count = (n: TestbedNode) => setDesired.filter((e) => e.nodeId === n.name).length
    expect([count(back1), count(back2)]).toEqual([1 + 1 + 1, 1 + 2 + 1])
  }, 240_000)

  test("a rollback that fails lifts its hold on the agent, which keeps healing drift", async () => {
    const n = bed.nodes[0] as TestbedNode
    const missing = await chimera(["rollback", "--targets", n.name, "--generation", "99"])
    expect(missing.code).toBe(1)
    expect((await n.node.exec(["test", "-e", "/run/chimera/deploy-hold"])).code).not.toBe(0)
    // Someone switches by hand: the agent heals back at once, since nothing holds it.
    const desired = (await view(n)).desiredPath as StorePath
    await n.node.switchTo(gens[2]!)
    await waitForSystem(n.node, desired, `${n.name} healed back`, 60_000)
  }, 120_000)
})
