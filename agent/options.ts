// The agent's flags (its node settings, how it reaches the control plane, the NixOS paths it watches),
// declared once for citty and parsed once with zod. The four node settings (node id, heartbeat, drift
// interval, auto-heal) and the log level may also come from the `[agent]` section and `log_level` of
// the configuration file (--config-file, else CHIMERA_CONFIG_FILE) or from CHIMERA_AGENT_* variables
// and CHIMERA_LOG_LEVEL: a flag wins over the environment, which wins over the file. The file is read
// with the control plane's own schema, so both processes accept and refuse the same files. A bad value
// stops the agent at start with a message that names the flag or the setting and where it came from;
// nothing past this module sees an unchecked value. --control-url's list of replicas is read in
// control-urls.ts.
import { isAbsolute } from "node:path"
import type { ArgsDef } from "citty"
import { z } from "zod"
import type { LayeredConfig } from "../control/config.ts"
import { HeartbeatInterval } from "../protocol/agent.ts"
import { NodeId, StorePath } from "../protocol/ids.ts"
import { BOOT_ID_FILE } from "../protocol/unconfirmed-deploy.ts"
import { ControlUrls } from "./control-urls.ts"
import { DEFAULT_FAILBACK_SECONDS } from "./replicas.ts"
import { DEFAULT_SPOOL_MAX_BYTES } from "./spool.ts"
import { DEFAULT_SWITCH_LOCK_WAIT_SECONDS } from "./switch-lock.ts"

export const agentArgs = {
  // No citty defaults for the settings the config file may hold: an absent flag must be told apart
  // from one given with the default's value, or the file could never set them.
  "node-id": {
    type: "string",
    description: "Unique identifier for this node (required here, as [agent] node_id or CHIMERA_AGENT_NODE_ID)",
    valueHint: "ID",
  },
  heartbeat: { type: "string", description: "Heartbeat interval in seconds (default 5)", valueHint: "SEC" },
  "drift-interval": {
    type: "string",
    description: "Drift check poll interval in seconds; links are also watched (default 30)",
    valueHint: "SEC",
  },
  "auto-heal": {
    type: "boolean",
    description: "Heal drift automatically (default)",
    negativeDescription: "Detect and report drift but do not heal it",
  },
  "switch-lock-wait": {
    type: "string",
    description:
      "How long a heal waits for another switch (nixos-rebuild) holding /run/nixos/switch-to-configuration.lock before it is skipped and retried (default 120)",
    valueHint: "SEC",
  },
  "spool-max-bytes": {
    type: "string",
    description:
      "Cap on unsent reports kept on disk; past it the oldest progress reports are compacted (default 16 MiB)",
    valueHint: "BYTES",
  },
  "config-file": {
    type: "string",
    description: "TOML configuration ([agent], log_level); default $CHIMERA_CONFIG_FILE",
    valueHint: "PATH",
  },
  watch: {
    type: "boolean",
    description: "Watch the system links for changes (inotify)",
    negativeDescription: "Only poll every --drift-interval (filesystems without inotify; the benchmark's baseline)",
    default: true,
  },
  "control-url": {
    type: "string",
    description:
      "Control plane URL; replicas as a comma-separated list or a repeated flag, tried in turn on failure (default: $CHIMERA_URL)",
    valueHint: "URL[,URL…]",
  },
  "failback-interval": {
    type: "string",
    description: `With several --control-url replicas: once moved off the first, ask it every SEC seconds whether it is ready and go back when it is; 0: stay (default ${DEFAULT_FAILBACK_SECONDS})`,
    valueHint: "SEC",
  },
  "spread-replicas": {
    type: "boolean",
    description:
      "With several --control-url replicas: take them in this node's own order, drawn from its id, not as given, so a fleet given one list spreads over the replicas (each node fails back to its own first)",
    default: false,
  },
  // The token's ways in, safest first: a process's command line is readable by every local user (ps),
  // its environment and its files are not.
  "join-token-file": {
    type: "string",
    description: "Read the join token for the first enrolment from this file (`-`: stdin), or set $CHIMERA_JOIN_TOKEN",
    valueHint: "PATH",
  },
  "delete-join-token-file": {
    type: "boolean",
    description: "Delete the --join-token-file once this node is enrolled (the token is single use)",
    default: false,
  },
  "join-token": {
    type: "string",
    description: "Join token on the command line (avoid: every local user can read it with ps)",
    valueHint: "TOKEN",
  },
  "state-dir": {
    type: "string",
    description: "Credential, desired closure and report spool",
    default: "/var/lib/chimera-agent",
  },
  "system-profile": { type: "string", description: "System profile link", default: "/nix/var/nix/profiles/system" },
  "current-system": { type: "string", description: "Running system link", default: "/run/current-system" },
  "booted-system": { type: "string", description: "Booted system link", default: "/run/booted-system" },
  "boot-id-file": {
    type: "string",
    description:
      "Where the running boot's id is read, to tell a reboot inside a deploy's confirm window (tests point it elsewhere)",
    default: BOOT_ID_FILE,
  },
  desired: {
    type: "string",
    description: "Enforce this closure until the control plane says otherwise (standalone use, tests)",
    valueHint: "STORE_PATH",
  },
  "log-level": { type: "string", description: "debug, info, warning or error (default info)" },
  "metrics-listen": {
    type: "string",
    description: "Serve Prometheus metrics at http://HOST:PORT/metrics, without a token (off by default)",
    valueHint: "HOST:PORT",
  },
} as const satisfies ArgsDef

const Seconds = z.coerce.number().positive().max(86_400)
const AbsolutePath = z.string().min(1).refine(isAbsolute, "expected an absolute path")
const Optional = (s: z.ZodType<string>) => s.optional().transform((v) => v ?? null)
// 127.0.0.1:9101, [::1]:9101 or localhost:9101; port 0 takes a free one.
const Listen = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "expected HOST:PORT, such as 127.0.0.1:9101")
  .transform((v) => {
    const i = v.lastIndexOf(":")
    return { host: v.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(v.slice(i + 1)) }
  })
  .refine((l) => l.port <= 65535, "expected a port from 0 to 65535")

const Flags = z.object({
  "node-id": NodeId,
  heartbeat: z.coerce.number().pipe(HeartbeatInterval),
  "drift-interval": Seconds,
  "auto-heal": z.boolean(),
  watch: z.boolean(),
  "switch-lock-wait": z.coerce.number().min(0).max(3600),
  "spool-max-bytes": z.coerce
    .number()
    .int("expected a whole number of bytes")
    .min(1_048_576, "expected at least 1048576 (1 MiB)"),
  "control-url": ControlUrls,
  "failback-interval": z.coerce
    .number()
    .refine((n) => n === 0 || (n >= 1 && n <= 86_400), "expected 0 (stay) or 1 to 86400 seconds"),
  "spread-replicas": z.boolean(),
  "join-token": Optional(z.string().min(1, "must not be empty")),
  "join-token-file": Optional(z.union([z.literal("-"), AbsolutePath])),
  "delete-join-token-file": z.boolean(),
  "config-file": z.string().optional(),
  "state-dir": AbsolutePath,
  "system-profile": AbsolutePath,
  "current-system": AbsolutePath,
  "booted-system": AbsolutePath,
  "boot-id-file": AbsolutePath,
  desired: StorePath.optional().transform((v) => v ?? null),
  "log-level": z
    .string()
    .transform((v) => v.toLowerCase())
    .pipe(z.enum(["debug", "info", "warning", "warn", "error", "critical"])),
  "metrics-listen": Listen.optional().transform((v) => v ?? null),
})

export interface AgentOptions {
  nodeId: NodeId
  heartbeatSeconds: number
  driftIntervalSeconds: number
  autoHeal: boolean
  /** Watch the links with inotify; without it the agent only polls. */
  watch: boolean
  /** How long a heal waits for NixOS's switch lock held by someone else, in seconds. */
  switchLockWaitSeconds: number
  /** Cap on the spool's unacknowledged reports, in bytes. */
  spoolMaxBytes: number
  /** The control plane's replicas, in the order given; empty: standalone. */
  controlUrls: string[]
  /** How often, moved off the first replica, the agent asks whether it is back, in seconds; 0: never. */
  failbackSeconds: number
  /** Take the replicas in this node's own order (replicas.ts `spreadOrder`), not as given. */
  spreadReplicas: boolean
  joinToken: string | null
  /** Where the join token came from; `flag` earns a warning, since argv is public on the host. */
  joinTokenSource: "flag" | "file" | "stdin" | "env" | null
  /** The file to delete once enrolled (--delete-join-token-file), or null. */
  joinTokenFileToDelete: string | null
  stateDir: string
  systemProfile: string
  currentSystem: string
  bootedSystem: string
  /** The kernel's boot id (a file whose content changes at every boot). */
  bootIdFile: string
  desired: StorePath | null
  logLevel: string
  /** Where to serve the agent's metrics; null: nowhere. */
  metricsListen: { host: string; port: number } | null
}

export class AgentOptionsError extends Error {
  readonly code = "E_AGENT_OPTIONS"
  constructor(message: string) {
    super(message)
    this.name = "AgentOptionsError"
  }
}

/** Where each of the settings the config file may hold lives there, and its environment variable. */
const FROM_CONFIG = {
  "node-id": ["agent.node_id", "CHIMERA_AGENT_NODE_ID"],
  heartbeat: ["agent.heartbeat_interval", "CHIMERA_AGENT_HEARTBEAT_INTERVAL"],
  "drift-interval": ["agent.drift_check_interval", "CHIMERA_AGENT_DRIFT_CHECK_INTERVAL"],
  "auto-heal": ["agent.auto_heal", "CHIMERA_AGENT_AUTO_HEAL"],
  "log-level": ["log_level", "CHIMERA_LOG_LEVEL"],
  "spool-max-bytes": ["agent.spool_max_bytes", "CHIMERA_AGENT_SPOOL_MAX_BYTES"],
} as const
type FromConfig = keyof typeof FROM_CONFIG

/**
 * Parses citty's raw args (kebab-case keys) plus the environment and the config file; reads
 * --join-token-file (`-`: stdin).
 */
export async function parseAgentOptions(
  raw: Record<string, unknown>,
  env: Record<string, string | undefined> = process.env,
  stdin: () => Promise<string> = () => Bun.stdin.text(),
): Promise<AgentOptions> {
  const input: Record<string, unknown> = {}
  for (const name of Object.keys(agentArgs)) input[name] = raw[name] === "" ? undefined : raw[name]
  input["control-url"] ??= env.CHIMERA_URL || undefined
  // What a flag did not set, the environment or the file may; the label names where it came from.
  const origin = new Map<string, { path: string; by: string }>()
  const layered = await _layered(env, input["config-file"])
  for (const [flag, [path]] of Object.entries(FROM_CONFIG) as [FromConfig, (typeof FROM_CONFIG)[FromConfig]][]) {
    if (input[flag] !== undefined) continue
    const by = layered.setBy(path)
    if (by === null) continue
    input[flag] = _at(layered, path)
    origin.set(flag, { path, by })
  }
  if (input["node-id"] === undefined)
    throw new AgentOptionsError(
      "--node-id: required; give the flag, set node_id under [agent] in the config file (--config-file or CHIMERA_CONFIG_FILE), or set CHIMERA_AGENT_NODE_ID",
    )
  input.heartbeat ??= "5"
  input["drift-interval"] ??= "30"
  input["auto-heal"] ??= true
  input["log-level"] ??= "info"
  input["spool-max-bytes"] ??= String(DEFAULT_SPOOL_MAX_BYTES)
  input["switch-lock-wait"] ??= String(DEFAULT_SWITCH_LOCK_WAIT_SECONDS)
  input["failback-interval"] ??= String(DEFAULT_FAILBACK_SECONDS)
  const parsed = Flags.safeParse(input)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const flag = String(issue?.path[0] ?? "")
    const where = origin.get(flag)
    // Never echo a token back: error messages end up in journals.
    const got = flag === "join-token" ? "" : ` (got ${JSON.stringify(input[flag])}${where ? `, from ${where.by}` : ""})`
    throw new AgentOptionsError(`${where ? where.path : `--${flag}`}: ${issue?.message ?? "invalid value"}${got}`)
  }
  const f = parsed.data
  const file = f["join-token-file"]
  if (f["delete-join-token-file"] && (file === null || file === "-"))
    throw new AgentOptionsError("--delete-join-token-file: needs --join-token-file PATH (a file, not stdin)")
  const fromFile = file === null ? null : await _tokenFromFile(file, stdin)
  const fromEnv = env.CHIMERA_JOIN_TOKEN || null
  const joinToken = f["join-token"] ?? fromFile ?? fromEnv
  const joinTokenSource =
    f["join-token"] !== null ? "flag" : fromFile !== null ? (file === "-" ? "stdin" : "file") : fromEnv ? "env" : null
  return {
    nodeId: f["node-id"],
    heartbeatSeconds: f.heartbeat,
    driftIntervalSeconds: f["drift-interval"],
    autoHeal: f["auto-heal"],
    watch: f.watch,
    spoolMaxBytes: f["spool-max-bytes"],
    switchLockWaitSeconds: f["switch-lock-wait"],
    controlUrls: f["control-url"],
    failbackSeconds: f["failback-interval"],
    spreadReplicas: f["spread-replicas"],
    joinToken,
    joinTokenSource,
    joinTokenFileToDelete: f["delete-join-token-file"] ? file : null,
    stateDir: f["state-dir"],
    systemProfile: f["system-profile"],
    currentSystem: f["current-system"],
    bootedSystem: f["booted-system"],
    bootIdFile: f["boot-id-file"],
    desired: f.desired,
    logLevel: f["log-level"],
    metricsListen: f["metrics-listen"],
  }
}

/**
 * The configuration file and CHIMERA_* variables, through the control plane's loader (which checks the
 * whole file, every section). Loaded only when there is something for it to read: the loader builds
 * the schema of every section, about 2.4 MB of the agent's memory, and the NixOS module passes flags
 * alone. With no file and no such variable it would add nothing (each setting's `setBy` is null).
 */
async function _layered(env: Record<string, string | undefined>, file: unknown): Promise<LayeredConfig> {
  const named = typeof file === "string" && file !== ""
  if (!named && !Object.keys(env).some((name) => name.startsWith("CHIMERA_") && env[name] && !AGENT_ENV.has(name)))
    return NOTHING_CONFIGURED
  const { ConfigError, loadLayeredConfig } = await import("../control/config.ts")
  try {
    return loadLayeredConfig({ env, file: named ? file : undefined })
  } catch (err) {
    if (err instanceof ConfigError) throw new AgentOptionsError(err.message)
    throw err
  }
}

/** Variables the agent reads itself, which the configuration loader does not. */
const AGENT_ENV = new Set(["CHIMERA_URL", "CHIMERA_JOIN_TOKEN"])
/** What the loader answers when there is no file and no variable: every setting unset. */
const NOTHING_CONFIGURED: LayeredConfig = { config: {} as LayeredConfig["config"], file: null, setBy: () => null }

function _at(layered: LayeredConfig, path: string): unknown {
  const [section, field] = path.split(".")
  const config = layered.config as unknown as Record<string, unknown>
  const value = config[section ?? ""]
  if (field === undefined) return value
  return (value as Record<string, unknown>)[field]
}

// The NixOS module hands the token over as a file (systemd LoadCredential / agenix), never on argv.
async function _tokenFromFile(path: string, stdin: () => Promise<string>): Promise<string> {
  const where = path === "-" ? "stdin" : path
  let text: string
  try {
    text = path === "-" ? await stdin() : await Bun.file(path).text()
  } catch (err) {
    throw new AgentOptionsError(`--join-token-file: cannot read ${where}: ${(err as Error).message}`)
  }
  const token = text.trim()
  if (!token) throw new AgentOptionsError(`--join-token-file: ${where} is empty`)
  return token
}
