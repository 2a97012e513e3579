// Every configuration option takes effect where it should, with flags over the environment over the
// file over the default. One table: each row names an option, the value each layer gives it and how
// its effect is observed in a real process (the CLI, the agent, the control plane); each group of rows
// runs its process four times, with the layers stacked one more each time:
//   default              nothing set
//   file                 CHIMERA_CONFIG_FILE (in a directory of its own: relative paths are read from it)
//   file + env           CHIMERA_<SECTION>_<FIELD> too
//   file + env + flag    the command's flag too (an option without a flag keeps the environment's value)
// Observations are what the process did, not what it parsed: the closure it built, the record it
// wrote, the node it reached over SSH and whether the key was accepted, the address it listens on, the
// session length it granted, the rate limit it enforces. Where the only visible trace is the process's
// own statement of its settings (the agent's `started` line, the control plane's `settings` line at
// INFO), the row says so.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorePath } from "../protocol/ids.ts"
import { addUser, call, enrollNode, heartbeatBody, PASSWORD } from "./support/auth.ts"
import { freePort, startInProcess } from "./support/control-plane.ts"
import { type AddressClaim, claimAddresses } from "./support/loopback.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { ed25519 } from "./support/sshd.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { requireTool, run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(240_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const AGENT = join(import.meta.dir, "../agent/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

const LAYERS = ["default", "file", "env", "flag"] as const
type Layer = (typeof LAYERS)[number]
/** An expectation a layer cannot be held to here (said why in the row). */
const UNCHECKED = Symbol("unchecked")

interface Setup {
  layer: Layer
  /** The config file's directory (relative paths in the file are read from it). */
  etc: string
  env: Record<string, string>
  flags: string[]
}

interface Row<O> {
  option: string
  /** What the file sets (a TOML value), the environment sets, the flag says. */
  file: unknown
  env: string
  flag?: string[]
  /** The flag's name where the run adds it itself (its value is known only then). */
  flagName?: string
  /** What `observe` sees at each layer; without a flag, the flag layer expects the environment's. */
  expect: Record<Exclude<Layer, "flag">, unknown> & { flag?: unknown }
  observe(o: O): unknown
}

interface Group<O> {
  name: string
  rows: Row<O>[]
  run(setup: Setup): Promise<O>
}

let work: string
let bed: Testbed
let hosts: AddressClaim[]
let gen1: StorePath

beforeAll(async () => {
  requireTool("tmux")
  work = await mkdtemp(join(tmpdir(), "chimera-config-options-"))
  gen1 = await buildTestSystem(1)
  bed = await createTestbed({ nodes: 1, boot: gen1 })
  hosts = claimAddresses(3)
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
  for (const h of hosts ?? []) h.release()
  await bed?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

const node = () => bed.nodes[0] as NonNullable<Testbed["nodes"][0]>

function toml(rows: Row<unknown>[], extra = ""): string {
  const root: string[] = []
  const sections = new Map<string, string[]>()
  for (const row of rows) {
    const [section, key] = row.option.split(".")
    if (key === undefined) root.push(`${section} = ${JSON.stringify(row.file)}`)
    else sections.set(section ?? "", [...(sections.get(section ?? "") ?? []), `${key} = ${JSON.stringify(row.file)}`])
  }
  return [...root, ...[...sections].map(([s, lines]) => `[${s}]\n${lines.join("\n")}`), extra].join("\n")
}

const envName = (option: string) => `CHIMERA_${option.replace(".", "_").toUpperCase()}`

/** A HOME with no keys or known_hosts, and no configuration but what a layer gives. */
async function baseEnv(dir: string): Promise<Record<string, string>> {
  await mkdir(join(dir, "home"), { recursive: true })
  return {
    HOME: join(dir, "home"),
    XDG_CONFIG_HOME: join(dir, "home", ".config"),
    SSH_AUTH_SOCK: "",
    CHIMERA_DATA_DIR: join(dir, "data"),
    CHIMERA_CONFIG_FILE: "",
    CHIMERA_URL: "",
    CHIMERA_TOKEN: "",
    CHIMERA_TMUX_SOCKET: `chimera-config-options-${process.pid}`,
    NO_COLOR: "1",
  }
}

let runs = 0
async function observeLayers<O>(group: Group<O>, extraToml = ""): Promise<Record<Layer, O>> {
  const out: Partial<Record<Layer, O>> = {}
  for (const layer of LAYERS) {
    const dir = join(work, `run-${++runs}`)
    const etc = join(dir, "etc")
    await mkdir(etc, { recursive: true })
    const env = await baseEnv(dir)
    const flags: string[] = []
    const at = LAYERS.indexOf(layer)
    if (at >= 1) {
      // The Nix files a file layer names relatively sit beside the config file.
      await copyFile(join(work, "etc", "cfgfile.nix"), join(etc, "cfgfile.nix"))
      await writeFile(join(etc, "chimera.toml"), toml(group.rows as Row<unknown>[], extraToml))
      env.CHIMERA_CONFIG_FILE = join(etc, "chimera.toml")
    }
    if (at >= 2) for (const row of group.rows) env[envName(row.option)] = row.env
    if (at >= 3) for (const row of group.rows) flags.push(...(row.flag ?? []))
    out[layer] = await group.run({ layer, etc, env, flags })
  }
  return out as Record<Layer, O>
}

function table<O>(group: Group<O>, extraToml = "") {
  let observed: Promise<Record<Layer, O>> | null = null
  describe(group.name, () => {
    for (const row of group.rows) {
      test(`${row.option}: default, then file, environment (${envName(row.option)}), flag ${row.flagName ?? row.flag?.[0] ?? "(none)"}`, async () => {
        observed ??= observeLayers(group, extraToml)
        const layers = await observed
        const want = { ...row.expect, flag: "flag" in row.expect ? row.expect.flag : row.expect.env }
        const seen = LAYERS.map((l) => (want[l] === UNCHECKED ? UNCHECKED : row.observe(layers[l])))
        expect(seen).toEqual(LAYERS.map((l) => want[l]))
      })
    }
  })
}

const chimera = (args: string[], s: Setup, cwd = work) =>
  run([process.execPath, MAIN, ...args, ...s.flags], { env: s.env, cwd })

const jsonOf = (r: { code: number; stdout: string; stderr: string }) => {
  try {
    return JSON.parse(r.stdout)
  } catch {
    throw new Error(`expected JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}

/** The JSON log lines a process wrote to stderr. */
const logLines = (stderr: string) =>
  stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)

const systemName = (closure: string) => closure.slice("/nix/store/".length + 33)

// ---- the CLI's own settings -------------------------------------------------------------------

const UNREACHABLE = "root@127.0.0.1:1"

table<{ record: { configPath: string; closure: string; session: string } }>({
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

table<{ watching: Record<string, unknown>; expected: string }>({
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

table<{ stderr: string; code: number }>({
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

type ExecResult = { target: { name: string }; ok: boolean; failure?: { kind: string; message: string } | null }
/** `chimera exec … -- true`: the layer's flags go before the command, which is everything after `--`. */
const execObs = async (s: Setup, flags: string[]) => {
  const r = await run(
    [process.execPath, MAIN, "exec", "--json", "--timeout", "20", ...flags, ...s.flags, "--", "true"],
    { env: s.env, cwd: work },
  )
  if (!r.stdout.trim()) return { error: r.stderr.trim(), results: [] as ExecResult[] }
  return { error: null, results: jsonOf(r) as ExecResult[] }
}
type ExecObs = Awaited<ReturnType<typeof execObs>>
const outcome = (o: ExecObs) => o.error ?? o.results.map((r) => (r.ok ? "ok" : (r.failure?.kind ?? "failed"))).join(",")

table<ExecObs>({
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
        o.results.map((r) => `${spellingLabel(r.target.name)} ${r.ok ? "ok" : "failed"}`).join(","),
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

table<ExecObs>({
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

table<ExecObs>({
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

table<ExecObs>({
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

table<AgentObs>({
  name: "chimera agent: seed 000's settings",
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

table<AgentObs>({
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

table<AgentObs>({
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

// ---- the control plane --------------------------------------------------------------------------

interface WebObs {
  url: string
  settings: Record<string, unknown>
  sessionSeconds: number
  limit: { api: number; login: number; agent: number }
}

const webPorts = new Map<Layer, number>()

async function web(s: Setup): Promise<WebObs> {
  const defaultPort = freePort()
  // The defaults (127.0.0.1:8080) are not bound here: other processes on this machine may hold 8080.
  const flags = s.layer === "default" ? ["--host", "127.0.0.1", "--port", String(defaultPort)] : []
  const proc = Bun.spawn([process.execPath, MAIN, "-v", "web", ...flags, ...s.flags], {
    env: s.env,
    stdout: "pipe",
    stderr: "pipe",
  })
  try {
    const stdout = proc.stdout.getReader()
    let out = ""
    while (!out.includes("\n")) {
      const { value, done } = await stdout.read()
      if (done) throw new Error(`chimera web exited: ${await new Response(proc.stderr).text()}`)
      out += new TextDecoder().decode(value)
    }
    stdout.releaseLock()
    const url = /on (http:\/\/\S+)/.exec(out)?.[1] ?? ""
    await waitFor(
      "the control plane's health",
      () =>
        fetch(`${url}/api/health`).then(
          (r) => r.ok,
          () => false,
        ),
      Boolean,
    )
    const admin = (await Bun.file(join(s.env.CHIMERA_DATA_DIR ?? "", "admin.token")).text()).trim()
    const cp = { url, adminToken: admin } as Parameters<typeof addUser>[0]
    await addUser(cp, "alice", "viewer")
    const login = await call(cp, null, "POST", "/api/auth/login", { username: "alice", password: PASSWORD })
    const { expiresAt } = (await login.json()) as { expiresAt: string }
    const nodes = await call(cp, admin, "GET", "/api/nodes")
    const credential = await enrollNode(cp, "limits-node")
    const agentCall = await call(
      cp,
      credential,
      "POST",
      "/api/agent/limits-node/heartbeat",
      heartbeatBody("limits-node"),
    )
    proc.kill("SIGTERM")
    await proc.exited
    const stderr = await new Response(proc.stderr).text()
    const settings = logLines(stderr).find((l) => l.msg === "settings")
    if (!settings) throw new Error(`no settings line:\n${stderr}`)
    return {
      url: url.replace(String(defaultPort), "DEFAULT-TEST-PORT"),
      settings,
      sessionSeconds: Math.round((Date.parse(expiresAt) - Date.now()) / 60_000) * 60,
      limit: {
        api: Number(nodes.headers.get("x-ratelimit-limit")),
        login: Number(login.headers.get("x-ratelimit-limit")),
        agent: Number(agentCall.headers.get("x-ratelimit-limit")),
      },
    }
  } finally {
    if (proc.exitCode === null) proc.kill("SIGKILL")
  }
}

const rateLimit = (name: string) => (o: WebObs) =>
  (o.settings.rateLimits as Record<string, { limit: number; windowMs: number }>)[name]?.limit

table<WebObs>({
  name: "chimera web",
  rows: [
    {
      option: "web.host",
      file: "HOST-FILE",
      env: "HOST-ENV",
      flag: ["--host", "HOST-FLAG"],
      expect: { default: UNCHECKED, file: "HOST-FILE", env: "HOST-ENV", flag: "HOST-FLAG" },
      observe: (o) => hostLabel(new URL(o.url).hostname),
    },
    {
      option: "web.port",
      file: "PORT-FILE",
      env: "PORT-ENV",
      flag: ["--port", "PORT-FLAG"],
      expect: { default: UNCHECKED, file: "file", env: "env", flag: "flag" },
      observe: (o) => [...webPorts].find(([, p]) => p === Number(new URL(o.url).port))?.[0],
    },
    {
      option: "auth.jwt_ttl_seconds",
      file: 600,
      env: "1200",
      expect: { default: 3600, file: 600, env: 1200 },
      observe: (o) => o.sessionSeconds,
    },
    {
      option: "rate_limits.api",
      file: 1001,
      env: "1002",
      expect: { default: 300, file: 1001, env: 1002 },
      observe: (o) => o.limit.api,
    },
    {
      option: "rate_limits.login",
      file: 21,
      env: "22",
      expect: { default: 10, file: 21, env: 22 },
      observe: (o) => o.limit.login,
    },
    {
      option: "rate_limits.agent",
      file: 2001,
      env: "2002",
      expect: { default: 1200, file: 2001, env: 2002 },
      observe: (o) => o.limit.agent,
    },
    // These take effect in the long run (days, whole windows, WebSocket and session counts); what shows
    // at start is the control plane's own statement of them, its `settings` line at INFO.
    {
      option: "auth.node_credential_rotation_days",
      file: 7,
      env: "0",
      expect: { default: 30, file: 7, env: 0 },
      observe: (o) => o.settings.nodeRotationDays,
    },
    {
      option: "retention.command_days",
      file: 3,
      env: "0",
      expect: { default: 30, file: 3, env: 0 },
      observe: (o) => o.settings.retentionCommandDays,
    },
    {
      option: "rate_limits.window_seconds",
      file: 120,
      env: "30",
      expect: { default: 60_000, file: 120_000, env: 30_000 },
      observe: (o) => (o.settings.rateLimits as Record<string, { windowMs: number }>).api?.windowMs,
    },
    {
      option: "rate_limits.sessions",
      file: 4,
      env: "5",
      expect: { default: 10, file: 4, env: 5 },
      observe: rateLimit("sessions"),
    },
    {
      option: "rate_limits.commands",
      file: 40,
      env: "50",
      expect: { default: 60, file: 40, env: 50 },
      observe: rateLimit("commands"),
    },
    {
      option: "rate_limits.websocket",
      file: 400,
      env: "500",
      expect: { default: 100, file: 400, env: 500 },
      observe: rateLimit("websocket"),
    },
  ],
  async run(s) {
    // Each layer its own address and port, so where the control plane listens shows which one won.
    const spell = (v: string) =>
      v
        .replace("HOST-FILE", hostOf("file"))
        .replace("HOST-ENV", hostOf("env"))
        .replace("HOST-FLAG", hostOf("flag"))
        .replace(/"?PORT-(FILE|ENV|FLAG)"?/, (_, l: string) => String(portOf(l.toLowerCase() as Layer)))
    if (s.env.CHIMERA_CONFIG_FILE)
      await writeFile(s.env.CHIMERA_CONFIG_FILE, spell(await Bun.file(s.env.CHIMERA_CONFIG_FILE).text()))
    for (const name of ["CHIMERA_WEB_HOST", "CHIMERA_WEB_PORT"]) if (s.env[name]) s.env[name] = spell(s.env[name])
    s.flags = s.flags.map(spell)
    return web(s)
  },
})

const hostOf = (layer: Layer) => hosts[["file", "env", "flag"].indexOf(layer)]?.address ?? ""
const hostLabel = (address: string) =>
  ({ [hostOf("file")]: "HOST-FILE", [hostOf("env")]: "HOST-ENV", [hostOf("flag")]: "HOST-FLAG" })[address] ?? address
function portOf(layer: Layer): number {
  if (!webPorts.has(layer)) webPorts.set(layer, freePort())
  return webPorts.get(layer) as number
}

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

  test("[mcp], [itsm] and [notifications] are checked, and named at start as not active yet", async () => {
    const dir = join(work, "inactive")
    await mkdir(join(dir, "etc"), { recursive: true })
    const file = join(dir, "etc", "chimera.toml")
    await writeFile(
      file,
      '[mcp]\nport = 9999\n[notifications]\nemail_to = "ops@example.org"\nslack_webhook_url = "https://hooks.example/secret-path"\n',
    )
    const port = freePort()
    const env = { ...(await baseEnv(dir)), CHIMERA_CONFIG_FILE: file, CHIMERA_ITSM_PROVIDER: "jira" }
    const proc = Bun.spawn([process.execPath, MAIN, "web", "--host", "127.0.0.1", "--port", String(port)], {
      env,
      stdout: "ignore",
      stderr: "pipe",
    })
    try {
      await waitFor(
        "the control plane's health",
        () =>
          fetch(`http://127.0.0.1:${port}/api/health`).then(
            (r) => r.ok,
            () => false,
          ),
        Boolean,
        60_000,
      )
    } finally {
      proc.kill("SIGTERM")
      await proc.exited
    }
    const stderr = await new Response(proc.stderr).text()
    expect(stderr).toContain(`[mcp] is not active yet: there is no MCP server in this version`)
    expect(stderr).toContain(`mcp.port (from ${file})`)
    expect(stderr).toContain("[itsm] is not active yet")
    expect(stderr).toContain("itsm.provider (from CHIMERA_ITSM_PROVIDER)")
    expect(stderr).toContain(`notifications.slack_webhook_url (from ${file}), notifications.email_to (from ${file})`)
    expect(stderr).not.toContain("secret-path")
    // A bad value in an inactive section still stops the start: validated, not ignored.
    const bad = await run([process.execPath, MAIN, "web", "--port", String(port)], {
      env: { ...env, CHIMERA_NOTIFICATIONS_EMAIL_SMTP_PORT: "smtp" },
    })
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("notifications.email_smtp_port: expected an integer from 1 to 65535")
  })

  test("without a config file or variables, the control plane warns about nothing", async () => {
    const dir = join(work, "quiet")
    const port = freePort()
    const proc = Bun.spawn([process.execPath, MAIN, "web", "--host", "127.0.0.1", "--port", String(port)], {
      env: await baseEnv(dir),
      stdout: "ignore",
      stderr: "pipe",
    })
    try {
      await waitFor(
        "the control plane's health",
        () =>
          fetch(`http://127.0.0.1:${port}/api/health`).then(
            (r) => r.ok,
            () => false,
          ),
        Boolean,
        60_000,
      )
    } finally {
      proc.kill("SIGTERM")
      await proc.exited
    }
    expect(await new Response(proc.stderr).text()).toBe("")
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
    expect(byName.results.map((r) => [r.target.name, r.ok])).toEqual([["web-1", true]])
    const byTag = await execObs(setup, [
      "--targets",
      "@web",
      "--identity",
      bed.identityFile,
      "--known-hosts",
      bed.knownHostsFile,
    ])
    expect(byTag.results.map((r) => [r.target.name, r.ok])).toEqual([["web-1", true]])
  })
})
