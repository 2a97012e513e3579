// Every configuration option the CLI and the agent read takes effect where it should, with flags over
// the environment over the file over the default (the control plane's own settings are in
// config-options-web.test.ts). Each group of rows runs one real process at four stacked layers
// (tests/support/config-layers.ts). Observations are what the process did, not what it parsed: the
// closure it built, the session it recorded, the node it reached over SSH and whether the key was
// accepted; for the agent, whose intervals show only over time, its own `started` line, which states
// the settings it runs with, and for log levels the lines it wrote.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { baseEnv, type Group, jsonOf, logLines, type Setup, table } from "./support/config-layers.ts"
import { startInProcess } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { ed25519 } from "./support/sshd.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { requireTool, run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(240_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const AGENT = join(import.meta.dir, "../agent/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

let work: string
let bed: Testbed
let gen1: StorePath

beforeAll(async () => {
  requireTool("tmux")
  work = await mkdtemp(join(tmpdir(), "chimera-config-options-"))
  gen1 = await buildTestSystem(1)
  bed = await createTestbed({ nodes: 1, boot: gen1 })
  // One Nix configuration per layer, each building a differently named test system.
  await mkdir(join(work, "etc"), { recursive: true })
  for (const [dir, tag] of [
    [work, "cfgdefault"],
    [join(work, "etc"), "cfgfile"],
    [work, "cfgenv"],
    [work, "cfgflag"],
  ] as const) {
    const name = tag === "cfgdefault" ? "default.nix" : `${tag}.nix`
    await writeFile(join(dir, name), `import ${TEST_SYSTEM} { generation = "1"; tag = "${tag}"; }\n`)
  }
  await Promise.all(["cfgdefault", "cfgfile", "cfgenv", "cfgflag"].map((tag) => buildTestSystem(1, { tag })))
})
afterAll(async () => {
  await bed?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

/** The layer table, with the file layer's relative Nix file beside its config file. */
const layered = <O>(group: Group<O>) =>
  table(group, {
    workDir: () => work,
    prepareEtc: (etc) => copyFile(join(work, "etc", "cfgfile.nix"), join(etc, "cfgfile.nix")),
  })

const node = () => bed.nodes[0] as NonNullable<Testbed["nodes"][0]>

const chimera = (args: string[], s: Setup, cwd = work) =>
  run([process.execPath, MAIN, ...args, ...s.flags], { env: s.env, cwd })

const systemName = (closure: string) => closure.slice("/nix/store/".length + 33)

// ---- the CLI's own settings -------------------------------------------------------------------

const UNREACHABLE = "root@127.0.0.1:1"

layered<{ record: { configPath: string; closure: string; session: string } }>({
  name: "chimera deploy --dry-run",
  rows: [
    {
      option: "nix.config_path",
      file: "cfgfile.nix",
      env: "", // set per run below: an absolute path
      flagName: "--config",
      expect: {
        default: "cfgdefault-test-system-1",
        file: "cfgfile-test-system-1",
        env: "cfgenv-test-system-1",
        flag: "cfgflag-test-system-1",
      },
      observe: (o) => systemName(o.record.closure),
    },
    {
      option: "fleet.session_name",
      file: "deploy-file",
      env: "deploy-env",
      flag: ["--session", "deploy-flag"],
      expect: { default: "chimera-deploy", file: "deploy-file", env: "deploy-env", flag: "deploy-flag" },
      observe: (o) => o.record.session,
    },
  ],
  async run(s) {
    if (s.layer === "env" || s.layer === "flag") s.env.CHIMERA_NIX_CONFIG_PATH = join(work, "cfgenv.nix")
    const flags = s.layer === "flag" ? ["--config", join(work, "cfgflag.nix")] : []
    const r = await chimera(["deploy", "--dry-run", "--json", "--targets", UNREACHABLE, "--timeout", "10", ...flags], s)
    return { record: jsonOf(r) }
  },
})

layered<{ watching: Record<string, unknown>; expected: string }>({
  name: "chimera watch",
  rows: [
    {
      option: "watch.interval_seconds",
      file: 20,
      env: "30",
      flag: ["--interval", "15"],
      expect: { default: 10, file: 20, env: 30, flag: 15 },
      observe: (o) => o.watching.intervalSeconds,
    },
    {
      option: "watch.session_name",
      file: "watch-file",
      env: "watch-env",
      flag: ["--session", "watch-flag"],
      expect: { default: "chimera-watch", file: "watch-file", env: "watch-env", flag: "watch-flag" },
      observe: (o) => o.watching.session,
    },
    {
      option: "nix.config_path",
      file: "cfgfile.nix",
      env: "", // set per run: an absolute path
      flagName: "--config",
      expect: {
        default: "cfgdefault-test-system-1",
        file: "cfgfile-test-system-1",
        env: "cfgenv-test-system-1",
        flag: "cfgflag-test-system-1",
      },
      observe: (o) => o.expected,
    },
  ],
  async run(s) {
    if (s.layer === "env" || s.layer === "flag") s.env.CHIMERA_NIX_CONFIG_PATH = join(work, "cfgenv.nix")
    if (s.layer === "flag") s.flags.push("--config", join(work, "cfgflag.nix"))
    // --once: the pass is real (the configuration built, the unreachable target reported), then exit 2.
    const r = await chimera(["-v", "watch", "--once", "--json", "--targets", UNREACHABLE, "--timeout", "10"], s)
    const watching = logLines(r.stderr).find((l) => l.msg === "watching")
    if (!watching) throw new Error(`no "watching" line (exit ${r.code}):\n${r.stderr}`)
    return { watching, expected: systemName(jsonOf(r).expected) }
  },
})

layered<{ stderr: string; code: number }>({
  name: "chimera run",
  rows: [
    {
      option: "nix.config_path",
      file: "missing/file.nix",
      env: "/nonexistent/env.nix",
      flag: ["--config", "/nonexistent/flag.nix"],
      // `run` enters nix-shell CONFIG; a missing file is named in the error, so the path used shows.
      expect: {
        default: "no Nix config at CWD/default.nix",
        file: "no Nix config at ETC/missing/file.nix",
        env: "no Nix config at /nonexistent/env.nix",
        flag: "no Nix config at /nonexistent/flag.nix",
      },
      observe: (o) => o.stderr,
    },
  ],
  async run(s) {
    const cwd = join(work, "default-missing")
    await mkdir(cwd, { recursive: true })
    const r = await run([process.execPath, MAIN, "run", ...s.flags, "--", "true"], { env: s.env, cwd })
    const said = /no Nix config at \S+/.exec(r.stderr)?.[0] ?? `exit ${r.code}: ${r.stderr}`
    return { code: r.code, stderr: said.replace(s.etc, "ETC").replace(cwd, "CWD") }
  },
})

// ---- [fleet] and [ssh]: which nodes the CLI reaches over SSH, and how ------------------------------

type ExecResult = { target: string; ok: boolean; failure?: { kind: string; message: string } | null }
/** `chimera exec … -- true`: the layer's flags go before the command, which is everything after `--`. */
const execObs = async (s: Setup, flags: string[]) => {
  const r = await run(
    [process.execPath, MAIN, "exec", "--json", "--timeout", "20", ...flags, ...s.flags, "--", "true"],
    { env: s.env, cwd: work },
  )
  if (!r.stdout.trim()) return { error: r.stderr.trim(), results: [] as ExecResult[] }
  return { error: null, results: (jsonOf(r) as { results: ExecResult[] }).results }
}
type ExecObs = Awaited<ReturnType<typeof execObs>>
const outcome = (o: ExecObs) => o.error ?? o.results.map((r) => (r.ok ? "ok" : (r.failure?.kind ?? "failed"))).join(",")

layered<ExecObs>({
  name: "chimera exec: targets",
  rows: [
    {
      option: "fleet.targets",
      file: ["FILE-TARGET"],
      env: "ENV-TARGET",
      flag: ["--targets", "FLAG-TARGET"],
      expect: {
        default: "--targets is required (or set fleet.targets in the config)",
        file: "FILE-TARGET ok",
        env: "ENV-TARGET ok",
        flag: "FLAG-TARGET ok",
      },
      observe: (o) =>
        o.error?.replace(/^error /, "").split(", e.g.")[0] ??
        o.results.map((r) => `${spellingLabel(r.target)} ${r.ok ? "ok" : "failed"}`).join(","),
    },
  ],
  async run(s) {
    // Three spellings of the one test node, so the target list shows which layer named it.
    const ssh = ["--identity", bed.identityFile, "--known-hosts", bed.knownHostsFile]
    const rewrite = (v: string | undefined) =>
      v
        ?.replace("FILE-TARGET", targetSpelling.file)
        .replace("ENV-TARGET", targetSpelling.env)
        .replace("FLAG-TARGET", targetSpelling.flag)
    if (s.env.CHIMERA_CONFIG_FILE) {
      const path = s.env.CHIMERA_CONFIG_FILE
      await writeFile(path, rewrite(await Bun.file(path).text()) ?? "")
    }
    if (s.env.CHIMERA_FLEET_TARGETS) s.env.CHIMERA_FLEET_TARGETS = rewrite(s.env.CHIMERA_FLEET_TARGETS) ?? ""
    s.flags = s.flags.map((f) => rewrite(f) ?? f)
    return execObs(s, ssh)
  },
})
const spellingLabel = (target: string) =>
  ({ [targetSpelling.file]: "FILE-TARGET", [targetSpelling.env]: "ENV-TARGET", [targetSpelling.flag]: "FLAG-TARGET" })[
    target
  ] ?? target
const targetSpelling = {
  get file() {
    return `root@${node().address}:22`
  },
  get env() {
    return `root@${node().address}`
  },
  get flag() {
    return node().address
  },
}

layered<ExecObs>({
  name: "chimera exec: key",
  rows: [
    {
      option: "ssh.identity_file",
      file: "keys/id", // relative: read from the config file's directory
      env: "", // a key the node does not know, set per run
      flag: [], // the node's key, set per run
      expect: { default: "auth-failed", file: "ok", env: "auth-failed", flag: "ok" },
      observe: outcome,
    },
  ],
  async run(s) {
    await mkdir(join(s.etc, "keys"), { recursive: true })
    await copyFile(bed.identityFile, join(s.etc, "keys", "id"))
    const stranger = join(s.etc, "stranger")
    await writeFile(stranger, ed25519("stranger").privateKey, { mode: 0o600 })
    if (s.layer === "env" || s.layer === "flag") s.env.CHIMERA_SSH_IDENTITY_FILE = stranger
    const flags = s.layer === "flag" ? ["--identity", bed.identityFile] : []
    return execObs(s, ["--targets", node().target, "--known-hosts", bed.knownHostsFile, ...flags])
  },
})

layered<ExecObs>({
  name: "chimera exec: known hosts",
  rows: [
    {
      option: "ssh.known_hosts_file",
      file: "known_hosts", // relative, a copy of the testbed's
      env: "", // an empty file, set per run
      flag: [],
      expect: { default: "unknown-host-key", file: "ok", env: "unknown-host-key", flag: "ok" },
      observe: outcome,
    },
  ],
  async run(s) {
    await copyFile(bed.knownHostsFile, join(s.etc, "known_hosts"))
    await writeFile(join(s.etc, "empty_known_hosts"), "")
    if (s.layer === "env" || s.layer === "flag") s.env.CHIMERA_SSH_KNOWN_HOSTS_FILE = join(s.etc, "empty_known_hosts")
    const flags = s.layer === "flag" ? ["--known-hosts", bed.knownHostsFile] : []
    return execObs(s, ["--targets", node().target, "--identity", bed.identityFile, ...flags])
  },
})

layered<ExecObs>({
  name: "chimera exec: new host keys",
  rows: [
    {
      option: "ssh.trust_new_hosts",
      file: true,
      env: "false",
      flag: ["--trust-new-hosts"],
      expect: { default: "unknown-host-key", file: "ok", env: "unknown-host-key", flag: "ok" },
      observe: outcome,
    },
  ],
  async run(s) {
    // A known_hosts that does not know the node, fresh for every run.
    const knownHosts = join(s.etc, "fresh_known_hosts")
    await writeFile(knownHosts, "")
    return execObs(s, ["--targets", node().target, "--identity", bed.identityFile, "--known-hosts", knownHosts])
  },
})

// ---- the agent ---------------------------------------------------------------------------------

interface AgentObs {
  code: number
  stderr: string
  lines: Record<string, unknown>[]
  started: Record<string, unknown> | undefined
}

/** A standalone agent (no control plane) on links of its own; stopped with SIGTERM once it runs. */
async function agent(s: Setup, flags: string[]): Promise<AgentObs> {
  const dir = join(s.etc, "..", "agent")
  const proc = Bun.spawn(
    [
      process.execPath,
      AGENT,
      "--state-dir",
      join(dir, "state"),
      "--system-profile",
      join(dir, "profile"),
      "--current-system",
      join(dir, "current"),
      "--booted-system",
      join(dir, "booted"),
      ...flags,
      ...s.flags,
    ],
    { env: s.env, stdout: "ignore", stderr: "pipe" },
  )
  const stderr = new Response(proc.stderr).text()
  // Running once its spool exists (it logs nothing at ERROR, so a log line cannot be the sign).
  await waitFor(
    "the agent to start or exit",
    async () => proc.exitCode !== null || (await Bun.file(join(dir, "state", "spool.jsonl")).exists()),
    Boolean,
    60_000,
  )
  if (proc.exitCode === null) proc.kill("SIGTERM")
  const code = await proc.exited
  const text = await stderr
  const lines = text.startsWith("{") ? logLines(text) : []
  return { code, stderr: text, lines, started: lines.find((l) => l.msg === "started") }
}

layered<AgentObs>({
  name: "chimera agent: heartbeat, drift interval, auto-heal",
  rows: [
    {
      option: "agent.heartbeat_interval",
      file: 7,
      env: "8",
      flag: ["--heartbeat", "9"],
      expect: { default: 5, file: 7, env: 8, flag: 9 },
      observe: (o) => o.started?.heartbeatSeconds,
    },
    {
      option: "agent.drift_check_interval",
      file: 11,
      env: "12",
      flag: ["--drift-interval", "13"],
      expect: { default: 30, file: 11, env: 12, flag: 13 },
      observe: (o) => o.started?.driftIntervalSeconds,
    },
    {
      option: "agent.auto_heal",
      file: false,
      env: "true",
      flag: ["--no-auto-heal"],
      expect: { default: true, file: false, env: true, flag: false },
      observe: (o) => o.started?.autoHeal,
    },
  ],
  run: (s) => agent(s, ["--node-id", "settings-node"]),
})

layered<AgentObs>({
  name: "chimera agent: node id",
  rows: [
    {
      option: "agent.node_id",
      file: "file-node",
      env: "env-node",
      flag: ["--node-id", "flag-node"],
      expect: {
        default: "refused: --node-id: required",
        file: "file-node",
        env: "env-node",
        flag: "flag-node",
      },
      observe: (o) =>
        o.started ? o.started.nodeId : `refused: ${/--node-id: required/.exec(o.stderr)?.[0] ?? o.stderr}`,
    },
  ],
  run: (s) => agent(s, []),
})

/** The most verbose level among the lines an agent wrote in a start and a stop. */
const mostVerbose = (o: AgentObs) =>
  ["debug", "info", "warning", "error"].find((level) => o.lines.some((l) => l.level === level)) ?? "none"

layered<AgentObs>({
  name: "chimera agent: log level",
  rows: [
    {
      option: "log_level",
      file: "debug",
      env: "ERROR",
      flag: ["--log-level", "warning"],
      // The agent's own default is info (a daemon says when it starts and stops); the standalone
      // warning is its only warning, and nothing in a clean start and stop is an error.
      expect: { default: "info", file: "debug", env: "none", flag: "warning" },
      observe: mostVerbose,
    },
  ],
  run: (s) => agent(s, ["--node-id", "log-node"]),
})

// ---- beyond the table ---------------------------------------------------------------------------

describe("what the table cannot show", () => {
  test("an agent configured only by the file enrolls under [agent] node_id and heartbeats every heartbeat_interval", async () => {
    await using cp = await startInProcess()
    const dir = await mkdtemp(join(work, "agent-cp-"))
    const jt = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    await writeFile(join(dir, "agent.toml"), '[agent]\nnode_id = "from-file"\nheartbeat_interval = 2\n')
    const proc = Bun.spawn(
      [
        process.execPath,
        AGENT,
        "--control-url",
        cp.url,
        "--state-dir",
        join(dir, "state"),
        "--system-profile",
        join(dir, "profile"),
        "--current-system",
        join(dir, "current"),
        "--booted-system",
        join(dir, "booted"),
      ],
      {
        env: { ...(await baseEnv(dir)), CHIMERA_CONFIG_FILE: join(dir, "agent.toml"), CHIMERA_JOIN_TOKEN: jt.token },
        stdout: "ignore",
        stderr: "pipe",
      },
    )
    try {
      const node = await waitFor(
        "the node from-file to heartbeat",
        async () => (await cp.api("/api/nodes/from-file")).json() as Promise<Record<string, unknown>>,
        (n) => n.lastHeartbeat != null,
        60_000,
      )
      expect(node.heartbeatIntervalSeconds).toBe(2)
    } finally {
      proc.kill("SIGTERM")
      await proc.exited
    }
  })

  test("the agent's --config-file wins over CHIMERA_CONFIG_FILE", async () => {
    const dir = join(work, "config-file-flag")
    await mkdir(join(dir, "etc"), { recursive: true })
    await writeFile(join(dir, "etc", "env.toml"), '[agent]\nnode_id = "from-env-file"\n')
    await writeFile(join(dir, "etc", "flag.toml"), '[agent]\nnode_id = "from-flag-file"\n')
    const env = { ...(await baseEnv(dir)), CHIMERA_CONFIG_FILE: join(dir, "etc", "env.toml") }
    const setup: Setup = { layer: "flag", etc: join(dir, "etc"), env, flags: [] }
    expect((await agent(setup, [])).started?.nodeId).toBe("from-env-file")
    await rm(join(dir, "agent"), { recursive: true, force: true })
    const flagged = await agent(setup, ["--config-file", join(dir, "etc", "flag.toml")])
    expect(flagged.started?.nodeId).toBe("from-flag-file")
  })

  test("the agent refuses a bad setting from the file, naming it and the file", async () => {
    const dir = join(work, "agent-bad")
    await mkdir(join(dir, "etc"), { recursive: true })
    await writeFile(join(dir, "etc", "c.toml"), '[agent]\nnode_id = "bad id"\nheartbeat_interval = 5\n')
    const env = { ...(await baseEnv(dir)), CHIMERA_CONFIG_FILE: join(dir, "etc", "c.toml") }
    const r = await agent({ layer: "file", etc: join(dir, "etc"), env, flags: [] }, [])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`agent.node_id: expected a node id`)
    expect(r.stderr).toContain(`from ${join(dir, "etc", "c.toml")}`)
  })

  test("[fleet.nodes] names a node for --targets", async () => {
    const dir = join(work, "named")
    await mkdir(dir, { recursive: true })
    const file = join(dir, "chimera.toml")
    await writeFile(file, `[fleet.nodes.web-1]\naddress = "${node().target}"\ntags = ["web"]\n`)
    const env = { ...(await baseEnv(dir)), CHIMERA_CONFIG_FILE: file }
    const setup: Setup = { layer: "file", etc: dir, env, flags: [] }
    const byName = await execObs(setup, [
      "--targets",
      "web-1",
      "--identity",
      bed.identityFile,
      "--known-hosts",
      bed.knownHostsFile,
    ])
    expect(byName.results.map((r) => [r.target, r.ok])).toEqual([["web-1", true]])
    const byTag = await execObs(setup, [
      "--targets",
      "@web",
      "--identity",
      bed.identityFile,
      "--known-hosts",
      bed.knownHostsFile,
    ])
    expect(byTag.results.map((r) => [r.target, r.ok])).toEqual([["web-1", true]])
  })
})
