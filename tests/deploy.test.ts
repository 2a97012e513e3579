// Deploy, rollback, generations and watch against a testbed of real sshd nodes: real Nix closures
// copied with nix-copy-closure, activated in each node's own namespace, magic rollback by the node's
// own watchdog, the real CLI as a subprocess.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { existsSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createNix } from "../control/adapters/nix.ts"
import { API_OUTPUT_BYTES } from "../control/adapters/ssh/command-targets.ts"
import { createSshExecutor } from "../control/adapters/ssh/index.ts"
import { createAuthStore } from "../control/adapters/store/auth-store.ts"
import { openDatabase } from "../control/adapters/store/sql-store.ts"
import { activateScript, confirmScript } from "../control/domain/activation.ts"
import { deploy } from "../control/domain/deploy.ts"
import type { DeploymentRecord } from "../control/domain/deployment-record.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startInProcess } from "./support/control-plane.ts"
import { oneTarget } from "./support/deploy-options.ts"
import { deployOutput } from "./support/deployment-record.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { waitForSystem } from "./support/test-node.ts"
import { createTestbed, type Testbed, type TestbedNode } from "./support/testbed.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

// Bun applies the preload's default timeout to the first test file only.
setDefaultTimeout(60_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

let work: string
let bed: Testbed
let gen1: StorePath
let gen2: StorePath
let gen3: StorePath
const configs: Record<string, string> = {}

/** A Nix file that builds generation `gen` of the test system (what an operator's configuration is). */
async function config(gen: string, extra = ""): Promise<string> {
  const path = join(work, `system-${gen}${extra ? "-broken" : ""}.nix`)
  await writeFile(path, `import ${TEST_SYSTEM} { generation = "${gen}"; tag = "deploy"; ${extra} }\n`)
  return path
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-deploy-"))
  ;[gen1, gen2, gen3] = (await Promise.all([1, 2, 3].map((g) => buildTestSystem(g, { tag: "deploy" })))) as [
    StorePath,
    StorePath,
    StorePath,
  ]
  configs.gen1 = await config("1")
  configs.gen2 = await config("2")
  configs.gen3 = await config("3")
  configs.broken = await config("4", "failSwitch = true;")
  bed = await createTestbed({ nodes: 20, boot: gen1 })
}, 120_000)

afterAll(async () => {
  await bed?.stop()
  await rm(work, { recursive: true, force: true })
})

const nodes = (from: number, to: number) => bed.nodes.slice(from, to)

const targetsOf = (ns: TestbedNode[]) => ns.map((n) => n.target).join(",")

async function chimera(args: string[], ssh = true) {
  const sshFlags = ssh ? ["--identity", bed.identityFile, "--known-hosts", bed.knownHostsFile] : []
  const r = await run([process.execPath, MAIN, ...args, ...sshFlags], {
    env: {
      CHIMERA_DATA_DIR: join(work, "data"),
      CHIMERA_URL: "",
      CHIMERA_TOKEN: "",
      CHIMERA_CONFIG_FILE: "",
      NO_COLOR: "1",
    },
  })
  return r
}

/** The audit log the CLI wrote to (its CHIMERA_DATA_DIR's database). */
async function auditEntries() {
  const { db, dialect } = await openDatabase(`sqlite://${join(work, "data", "chimera.db")}`)
  try {
    return await createAuthStore(db, dialect).listAudit({ limit: 10_000 })
  } finally {
    await db.close()
  }
}

async function deployJson(args: string[]): Promise<{ code: number; record: DeploymentRecord; stderr: string }> {
  const r = await chimera(["deploy", ...args, "--json"])
  return deployOutput(r)
}

describe("deploy", () => {
  test("to 20 nodes in parallel, with overlapping per-target timings; a second deploy skips them as up to date", async () => {
    const { code, record, stderr } = await deployJson([
      "--targets",
      targetsOf(bed.nodes),
      "--config",
      configs.gen2!,
      "--parallel",
      "20",
    ])
    expect({
      code,
      stderr: code === 0 ? "" : stderr,
      errors: record.targets.map((t) => t.error).filter(Boolean),
    }).toEqual({ code: 0, stderr: "", errors: [] })
    expect(record.closure).toBe(gen2)
    expect(record.targets.map((t) => t.status)).toEqual(Array(20).fill("deployed"))
    for (const n of bed.nodes) expect(await n.node.links()).toMatchObject({ profile: gen2, current: gen2 })
    // Parallel: every target started before the first one finished.
    const starts = record.targets.map((t) => Date.parse(t.startedAt))
    const ends = record.targets.map((t) => Date.parse(t.startedAt) + t.ms)
    expect(Math.max(...starts)).toBeLessThan(Math.min(...ends))

    // Every command run on a node is audited: one entry per target, with who ran it and the result.
    const deploys = (await auditEntries()).filter((e) => e.command === `deploy ${gen2}`)
    expect(deploys.map((e) => e.nodeId).sort()).toEqual(bed.nodes.map((n) => n.target).sort())
    expect(new Set(deploys.map((e) => e.requestId)).size).toBe(1)
    expect(deploys.every((e) => e.result === "ok" && e.action === "command.run" && e.actor.startsWith("cli:"))).toBe(
      true,
    )

    const again = await deployJson(["--targets", targetsOf(bed.nodes), "--config", configs.gen2!])
    expect(again.code).toBe(0)
    expect(again.record.targets.map((t) => t.status)).toEqual(Array(20).fill("up-to-date"))
  })

  test("--dry-run prints the plan and changes nothing", async () => {
    const { code, record } = await deployJson([
      "--targets",
      targetsOf(nodes(0, 2)),
      "--config",
      configs.gen3!,
      "--dry-run",
    ])
    expect(code).toBe(0)
    expect(record.status).toBe("planned")
    expect(record.targets.map((t) => t.status)).toEqual(["planned", "planned"])
    expect(record.targets[0]?.copy).toEqual({ missingPaths: 0, narBytes: 0 })
    expect((await bed.nodes[0]!.node.links()).current).toBe(gen2)
  })

  test("a plan counts every missing path under the control plane's 1 MiB output cap", async () => {
    // A fresh node lacking 25,000 store paths: their list is about 1.45 MB, past the cap the control
    // plane's executor puts on a command's output. Paths no store holds stand for a large closure.
    const [n] = nodes(6, 7)
    const nix = createNix()
    // Nix's base-32 hash alphabet has no e, o, t or u; the name keeps each path its own.
    const hash = (i: number) =>
      i
        .toString(32)
        .padStart(32, "0")
        .replace(/[eotu]/g, "a")
    const absent = Array.from({ length: 25_000 }, (_, i) => ({
      path: `/nix/store/${hash(i)}-absent-${i}` as StorePath,
      narBytes: 1000,
    }))
    const exec = createSshExecutor({
      identity: bed.identityFile,
      knownHosts: bed.knownHostsFile,
      maxOutputBytes: API_OUTPUT_BYTES,
    })
    try {
      const record = await deploy(
        { ...oneTarget(n!, configs.gen2!), dryRun: true },
        { nix: { ...nix, requisites: async (path) => [...(await nix.requisites(path)), ...absent] }, exec },
      )
      expect(record.targets[0]?.copy?.missingPaths).toBeGreaterThanOrEqual(25_000)
      expect(record.targets[0]?.copy?.narBytes).toBeGreaterThanOrEqual(25_000_000)
    } finally {
      await exec.close()
    }
  })

  test("a failing health check leaves every target on its previous generation", async () => {
    const ns = nodes(0, 3)
    const { code, record } = await deployJson([
      "--targets",
      targetsOf(ns),
      "--config",
      configs.gen3!,
      "--health-cmd",
      "test -e /nonexistent",
      "--health-timeout",
      "2",
    ])
    expect(code).toBe(1)
    expect(record.targets.map((t) => t.status)).toEqual(["rolled-back", "rolled-back", "rolled-back"])
    expect(record.targets[0]?.error).toContain("health check failed")
    for (const n of ns) expect(await n.node.links()).toMatchObject({ profile: gen2, current: gen2 })
  })

  test("a failing activation is rolled back at once", async () => {
    const [n] = nodes(3, 4)
    const { code, record } = await deployJson(["--targets", n!.target, "--config", configs.broken!])
    expect(code).toBe(1)
    expect(record.targets[0]?.status).toBe("rolled-back")
    expect(record.targets[0]?.error).toContain("activation of generation 4 failed")
    expect(await n!.node.links()).toMatchObject({ profile: gen2, current: gen2 })
  })

  test("a node whose confirmation cannot arrive (sshd stopped after activation) rolls itself back", async () => {
    const [n] = nodes(4, 5)
    const exec = createSshExecutor({ identity: bed.identityFile, knownHosts: bed.knownHostsFile, timeoutMs: 3000 })
    try {
      const record = await deploy(oneTarget(n!, configs.gen3!), {
        nix: createNix(),
        exec,
        // Right after activation the node loses its sshd: the new connection that confirms cannot open.
        onProgress: (_t, phase) => {
          if (phase === "activate") void n!.stopSshd()
        },
      })
      expect(record.targets[0]?.status).toBe("rolled-back")
      expect(record.targets[0]?.error).toContain("unconfirmed")
      expect((await n!.node.links()).current).toBe(gen3)
      // The watchdog fires 5 s after activation and puts the previous generation back.
      await waitForSystem(n!.node, gen2, "the node to roll itself back", 15_000)
    } finally {
      await exec.close()
      await n!.startSshd()
    }
  })

  // A deploy interrupted after its activation (Ctrl-C, a dropped laptop) leaves its watchdog counting
  // on the node. Deploying the same configuration again must not find the node "up to date" and stop,
  // only for the watchdog to roll it back a moment later.
  test("a deploy after an interrupted one waits for its watchdog, then deploys and stays", async () => {
    const [n] = nodes(12, 13)
    const interrupted = activateScript({
      deployId: "interrupted-1",
      closure: gen3,
      isSystem: true,
      confirmTimeoutSeconds: 3,
    })
    expect((await n!.node.exec(["sh", "-c", interrupted])).code).toBe(0)
    expect((await n!.node.links()).current).toBe(gen3)
    const { code, record } = await deployJson(["--targets", n!.target, "--config", configs.gen3!])
    expect({ code, status: record.targets[0]?.status }).toEqual({ code: 0, status: "deployed" })
    expect(record.targets[0]?.log).toContainEqual(expect.stringContaining("waiting for deploy interrupted-1"))
    const outcome = await n!.node.exec(["cat", "/run/chimera/deploys/interrupted-1/outcome"])
    expect(outcome.stdout.trim()).toBe("rolled-back")
    expect(await n!.node.links()).toMatchObject({ profile: gen3, current: gen3 })
  })

  test("a dry run after an interrupted deploy says it is undecided and plans at once, without waiting", async () => {
    const [n] = nodes(14, 15)
    const D = "/run/chimera/deploys/pending-1"
    const armed = activateScript({ deployId: "pending-1", closure: gen3, isSystem: true, confirmTimeoutSeconds: 3600 })
    expect((await n!.node.exec(["sh", "-c", armed])).code).toBe(0)
    try {
      // A wait would last the hour the watchdog counts, far past this test's time-out.
      const { code, record } = await deployJson(["--targets", n!.target, "--config", configs.gen3!, "--dry-run"])
      // Not "up-to-date": the watchdog may yet put the previous generation back.
      expect({ code, status: record.targets[0]?.status }).toEqual({ code: 0, status: "planned" })
      expect(record.targets[0]?.log).toContainEqual(
        expect.stringContaining("a deploy would wait for deploy pending-1: under way here or not confirmed"),
      )
      expect(record.targets[0]?.log).not.toContainEqual(expect.stringContaining("waiting for deploy"))
      // Nor in its words: it runs the closure, but only for as long as the undecided deploy is not rolled back.
      expect(record.targets[0]?.log).not.toContain("plan: up to date")
      expect(await n!.node.links()).toMatchObject({ profile: gen3, current: gen3 })
    } finally {
      await n!.node.exec(["sh", "-c", confirmScript("pending-1", true)])
      await n!.node.exec(["sh", "-c", `kill $(cat ${D}/watchdog.pid) 2>/dev/null; true`])
    }
  })

  // The watchdog claims its decision, then switches back, then writes its outcome: a deploy that plans
  // in between finds the node still on the closure being rolled back. Here that switch is held open
  // (the claim made, the watchdog alive, the switch back done a moment later) as a slow one would be.
  test("a deploy while a watchdog is rolling back waits for the rollback, then deploys and stays", async () => {
    const [n] = nodes(13, 14)
    const D = "/run/chimera/deploys/rolling-1"
    const armed = await n!.node.exec([
      "sh",
      "-c",
      activateScript({ deployId: "rolling-1", closure: gen3, isSystem: true, confirmTimeoutSeconds: 3600 }),
    ])
    expect(armed.code).toBe(0)
    const [, gen, path] = /^previous (\d+) (\S+)$/m.exec(armed.stdout) ?? []
    const rollBack = `mkdir ${D}/decided; setsid -f sh -c 'sleep 2; nix-env -p /nix/var/nix/profiles/system --switch-generation ${gen} && ${path}/bin/switch-to-configuration switch; echo rolled-back > ${D}/outcome; kill $(cat ${D}/watchdog.pid)' </dev/null >/dev/null 2>&1`
    await waitFor(
      "the watchdog's pid",
      () => n!.node.exec(["test", "-s", `${D}/watchdog.pid`]),
      (r) => r.code === 0,
    )
    expect((await n!.node.exec(["sh", "-c", rollBack])).code).toBe(0)
    const { code, record } = await deployJson(["--targets", n!.target, "--config", configs.gen3!])
    expect({ code, status: record.targets[0]?.status }).toEqual({ code: 0, status: "deployed" })
    expect(record.targets[0]?.log).toContainEqual(expect.stringContaining("waiting for deploy rolling-1"))
    expect(await n!.node.links()).toMatchObject({ profile: gen3, current: gen3 })
  })

  // A rollback has no confirmation and no watchdog: a deploy that waits for one says what it waits for.
  test("a deploy while a rollback switches the node waits for it and says it is a rollback", async () => {
    const [n] = nodes(16, 17)
    const slow = await buildTestSystem(5, { tag: "deploy", slowSwitch: 4 })
    const profile = "/nix/var/nix/profiles/system"
    // The slow system is the generation before the current one, so a rollback switches to it.
    for (const path of [slow, gen2])
      expect((await n!.node.exec(["nix-env", "-p", profile, "--set", path])).code).toBe(0)
    const rollingBack = chimera(["rollback", "--targets", n!.target])
    await waitFor(
      "the rollback's claim on the node",
      () => n!.node.exec(["sh", "-c", "ls /run/chimera/deploys | grep '^rollback-'"]),
      (r) => r.code === 0,
    )
    const { code, record } = await deployJson(["--targets", n!.target, "--config", configs.gen3!])
    expect({ code, status: record.targets[0]?.status }).toEqual({ code: 0, status: "deployed" })
    // Not "deploy rollback-N: activated here and not confirmed, until … its watchdog rolls it back".
    const waited = record.targets[0]?.log.find((line) => line.includes("waiting for"))
    expect(waited).toMatch(/waiting for a rollback switching here \(rollback-\d+\), until it ends$/)
    expect((await rollingBack).code).toBe(0)
    expect(await n!.node.links()).toMatchObject({ profile: gen3, current: gen3 })
  })

  test("COMMAND runs in nix-shell in the node's persistent tmux session", async () => {
    const [n] = nodes(5, 6)
    const { code, record } = await deployJson([
      "--targets",
      n!.target,
      "--config",
      configs.gen3!,
      "--session",
      "deploy-cmd",
      "--health-cmd",
      "grep -q 3 /run/chimera/commands/*/output",
      "echo generation $generation",
    ])
    expect({ code, error: record.targets[0]?.error }).toEqual({ code: 0, error: null })
    const sessions = await n!.node.exec(["sh", "-c", "TMUX_TMPDIR=/run tmux list-sessions -F '#{session_name}'"])
    expect(sessions.stdout).toContain("deploy-cmd")
  })
})

describe("deploy to nodes with agents", () => {
  test("an enrolled agent does not undo a push deploy, and the control plane learns the new desired closure", async () => {
    await using cp = await startInProcess()
    const tokens: string[] = []
    for (let i = 0; i < 2; i++) {
      const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })
      tokens.push(((await res.json()) as { token: string }).token)
    }
    await using agents = await createTestbed({
      nodes: 2,
      boot: gen1,
      prefix: "agent",
      agent: { controlUrl: cp.url, joinTokens: tokens },
    })
    for (const n of agents.nodes) {
      await waitFor(
        `${n.name} enrolled`,
        async () => (await cp.api(`/api/nodes/${n.name}`)).status,
        (s) => s === 200,
      )
      await cp.api(`/api/nodes/${n.name}/desired`, { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
    }
    const names = agents.nodes.map((n) => n.name).join(",")
    const r = await run(
      [
        process.execPath,
        MAIN,
        "deploy",
        "--targets",
        names,
        "--config",
        configs.gen2!,
        "--json",
        "--identity",
        agents.identityFile,
        "--known-hosts",
        agents.knownHostsFile,
      ],
      {
        env: {
          CHIMERA_DATA_DIR: join(work, "agents-data"),
          CHIMERA_URL: cp.url,
          CHIMERA_TOKEN: cp.adminToken,
          CHIMERA_CONFIG_FILE: agents.configFile,
        },
      },
    )
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" })
    for (const n of agents.nodes) {
      const view = (await (await cp.api(`/api/nodes/${n.name}`)).json()) as { desiredPath: string }
      expect(view.desiredPath).toBe(gen2)
    }
    // Longer than the agents' reaction time: they keep the deployed generation.
    await Bun.sleep(1500)
    for (const n of agents.nodes) expect(await n.node.links()).toMatchObject({ profile: gen2, current: gen2 })
    // The record went to the control plane through its API; the CLI opened no database of its own.
    const listed = (await (await cp.api("/api/deployments")).json()) as { deployments: DeploymentRecord[] }
    expect(listed.deployments.map((d) => [d.closure, d.status])).toEqual([[gen2, "succeeded"]])
    const audit = (await (await cp.api("/api/audit?action=command.run")).json()) as {
      entries: { actor: string; nodeId: string; detail: { via?: string } }[]
    }
    expect(audit.entries.map((e) => [e.nodeId, e.actor, e.detail.via]).sort()).toEqual(
      agents.nodes.map((n) => [n.name, "bootstrap admin", "cli"]).sort(),
    )
    expect(existsSync(join(work, "agents-data", "chimera.db"))).toBe(false)
  })
})

describe("rollback and generations", () => {
  test("generations lists each node's generations; rollback goes back one, or to a named generation", async () => {
    const ns = nodes(6, 8)
    const gens = await chimera(["generations", "--targets", targetsOf(ns), "--json"])
    expect(gens.code).toBe(0)
    const listed = JSON.parse(gens.stdout) as {
      results: { generations: { number: number; path: string; current: boolean }[] }[]
    }
    expect(listed.results[0]?.generations.map((g) => [g.number, g.path, g.current])).toEqual([
      [1, gen1, false],
      [2, gen2, true],
    ])

    const back = await chimera(["rollback", "--targets", targetsOf(ns), "--json"])
    expect(back.code).toBe(0)
    const results = (JSON.parse(back.stdout) as { results: { ok: boolean; generation: number; path: string }[] })
      .results
    expect(results.map((r) => [r.ok, r.generation, r.path])).toEqual([
      [true, 1, gen1],
      [true, 1, gen1],
    ])
    for (const n of ns) expect(await n.node.links()).toMatchObject({ profile: gen1, current: gen1 })

    const named = await chimera(["rollback", "--targets", ns[0]!.target, "--generation", "2", "--json"])
    expect(named.code).toBe(0)
    expect(await ns[0]!.node.links()).toMatchObject({ profile: gen2, current: gen2 })
    const missing = await chimera(["rollback", "--targets", ns[0]!.target, "--generation", "99", "--json"])
    expect(missing.code).toBe(1)
    expect((JSON.parse(missing.stdout) as { results: { error: string }[] }).results[0]?.error).toBe(
      `${ns[0]!.target} has no generation 99: \`chimera generations --targets ${ns[0]!.target}\` lists the ones it has`,
    )
    // Only this test's nodes: other tests in this file roll back nodes of their own too.
    const mine = new Set(ns.map((n) => n.target))
    const rollbacks = (await auditEntries()).filter(
      (e) => e.command?.startsWith("rollback") && mine.has(e.nodeId ?? ""),
    )
    expect(rollbacks.map((e) => [e.command, e.result])).toEqual([
      ["rollback", "ok"],
      ["rollback", "ok"],
      ["rollback --generation 2", "ok"],
      ["rollback --generation 99", "failed"],
    ])
  })
})

describe("watch --once", () => {
  test("exits 0 when congruent, 1 when it healed drift, 2 when a heal failed", async () => {
    const ns = nodes(8, 11)
    const watch = (cfg: string, targets = ns) =>
      chimera(["watch", "--once", "--targets", targetsOf(targets), "--config", cfg, "--json"])
    const ok = await watch(configs.gen2!)
    expect({ code: ok.code, err: ok.stderr }).toEqual({ code: 0, err: "" })

    await ns[1]!.node.switchTo(gen1)
    const healed = await watch(configs.gen2!)
    expect(healed.code).toBe(1)
    const pass = JSON.parse(healed.stdout) as { congruence: { status: string }[]; heal: DeploymentRecord }
    expect(pass.congruence.map((c) => c.status)).toEqual(["congruent", "drifted", "congruent"])
    expect(pass.heal.kind).toBe("heal")
    expect(await ns[1]!.node.links()).toMatchObject({ profile: gen2, current: gen2 })

    const failed = await watch(configs.broken!, ns.slice(0, 1))
    expect(failed.code).toBe(2)
    expect(await ns[0]!.node.links()).toMatchObject({ profile: gen2, current: gen2 })

    // The agent's deploy hold is bounded, so a longer confirm window is refused up front.
    const tooLong = await chimera([
      "watch",
      "--once",
      "--targets",
      ns[0]!.target,
      "--config",
      configs.gen2!,
      "--confirm-timeout",
      "4000",
    ])
    // A refused flag is the usage status, never watch's 1 (healed) or 2 (not healed).
    expect({ code: tooLong.code, said: tooLong.stderr.includes("--confirm-timeout: at most 3600") }).toEqual({
      code: 64,
      said: true,
    })

    const list = await chimera(["deployments", "--json"], false)
    const kinds = (JSON.parse(list.stdout) as { deployments: DeploymentRecord[] }).deployments.map((d) => d.kind)
    expect(kinds).toContain("heal")
  })
})
