// Chimera's configuration: seed 000's sections as one zod schema with the seed's defaults, read from the
// TOML file named by CHIMERA_CONFIG_FILE, then from CHIMERA_<SECTION>_<FIELD> environment variables, then
// from command-line flags, each layer overriding the one before. It is parsed once, at start: a bad value
// fails there with the field's path, where the value came from and what was expected, e.g.
//   config: web.port: expected an integer from 1 to 65535, got "http" (from CHIMERA_WEB_PORT)
// Unknown keys are errors, so a typo cannot silently fall back to a default. Secret values are never
// echoed in an error. A relative path set in the file (nix.config_path, ssh.*_file) is read from the
// file's directory, as a path in /etc/chimera/config.toml means one beside it; from the environment or
// a flag it is read from the working directory. The process-level settings (CHIMERA_DATA_DIR, CHIMERA_DB, CHIMERA_URL,
// CHIMERA_TOKEN, CHIMERA_CONFIG_FILE) are not sections; `dataDir` and `databaseUrl` resolve the first two.
import { readFileSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { z } from "zod"

export class ConfigError extends Error {
  readonly code = "E_CONFIG"
  override name = "ConfigError"
}

const _int = (expected: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
  const error = { error: expected }
  return z.number(error).int(error).min(min, error).max(max, error)
}
const _port = () => _int("expected an integer from 1 to 65535", 1, 65535)
const _seconds = () => _int("expected a whole number of seconds, at least 1", 1)
const _string = () => z.string({ error: "expected a string" })
const _bool = () => z.boolean({ error: "expected true or false" })
const _url = () =>
  _string().refine((v) => v === "" || /^https?:\/\/[^\s/]+/.test(v), { error: 'expected an http(s) URL or ""' })
// Every field of a section has a default, so `{}` is a valid input; the generic shape hides that from tsc.
const _section = <T extends z.core.$ZodLooseShape>(shape: T) =>
  z
    .object(shape, { error: "expected a table (a [section] of settings)" })
    .strict()
    .prefault({} as never)

export const LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const

export const ChimeraConfig = z
  .object({
    nix: _section({ config_path: _string().default("default.nix") }),
    fleet: _section({
      targets: z.array(_string(), { error: "expected a list of strings" }).default([]),
      session_name: _string().default("chimera-deploy"),
      // Named nodes for `--targets NAME` and `--targets @tag` (control/adapters/ssh/inventory.ts).
      nodes: z
        .record(
          _string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
            error: "expected a node name of letters, digits, . _ -",
          }),
          z
            .object(
              {
                address: _string().min(1, { error: "expected [user@]host[:port]" }),
                tags: z.array(_string(), { error: "expected a list of strings" }).default([]),
              },
              { error: "expected a table with address and tags" },
            )
            .strict(),
          { error: "expected a table of [fleet.nodes.NAME] tables" },
        )
        .default({}),
    }),
    watch: _section({
      interval_seconds: _seconds().default(10),
      session_name: _string().default("chimera-watch"),
    }),
    agent: _section({
      node_id: _string().default(""),
      heartbeat_interval: _seconds().default(5),
      drift_check_interval: _seconds().default(30),
      auto_heal: _bool().default(true),
      spool_max_bytes: _int("expected a whole number of bytes, at least 1048576", 1_048_576).default(16 * 1024 * 1024),
    }),
    web: _section({ host: _string().default("127.0.0.1"), port: _port().default(8080) }),
    mcp: _section({ host: _string().default("localhost"), port: _port().default(8765) }),
    telemetry: _section({ endpoint: _string().default(""), insecure: _bool().default(false) }),
    itsm: _section({
      provider: z.enum(["", "servicenow", "jira"], { error: 'expected "servicenow", "jira" or "" (none)' }).default(""),
      url: _url().default(""),
      username: _string().default(""),
      api_key: _string().default(""),
      project_key: _string().default(""),
    }),
    notifications: _section({
      slack_webhook_url: _url().default(""),
      pagerduty_api_key: _string().default(""),
      email_smtp_host: _string().default(""),
      email_smtp_port: _port().default(587),
      email_from: _string().default(""),
      email_to: _string().default(""),
    }),
    // Issue #4: session length, scheduled node credential rotation, and seed 002's rate limits
    // (requests per window; `agent` counts per node, `login` per source address).
    auth: _section({
      jwt_ttl_seconds: _int("expected a whole number of seconds from 60 to 86400", 60, 86_400).default(3600),
      // However often a session is refreshed, its login ends this long after the password was given.
      session_max_seconds: _int("expected a whole number of seconds from 60 to 2592000", 60, 2_592_000).default(43_200),
      node_credential_rotation_days: _int("expected a whole number of days (0: only on request)", 0, 3650).default(30),
    }),
    // How long the control plane keeps what agents answered to commands (relayed output, activation
    // results) once they are answered: 0 keeps them forever. The audit log is never pruned.
    retention: _section({
      command_days: _int("expected a whole number of days (0: keep forever)", 0, 3650).default(30),
      // Fleet events (drift, heals, reachability) older than this are pruned; 0 keeps them forever.
      event_days: _int("expected a whole number of days (0: keep forever)", 0, 3650).default(90),
    }),
    // Bounds that keep one caller from starving the rest: live event streams (per user, counting the
    // API tokens they made, and in total) and what each node may report per window (bytes of request
    // bodies, number of reports); past them a 429 says when to come back.
    limits: _section({
      event_streams_per_user: _int("expected a whole number of streams, at least 1", 1).default(16),
      event_streams: _int("expected a whole number of streams, at least 1", 1).default(1000),
      node_report_bytes: _int("expected a whole number of bytes, at least 65536", 65_536).default(4 * 1024 * 1024),
      node_reports: _int("expected a whole number of reports, at least 1", 1).default(600),
      node_report_window_seconds: _seconds().default(60),
    }),
    rate_limits: _section({
      window_seconds: _seconds().default(60),
      api: _int("expected a whole number of requests, at least 1", 1).default(300),
      agent: _int("expected a whole number of requests, at least 1", 1).default(1200),
      login: _int("expected a whole number of attempts, at least 1", 1).default(10),
      enroll: _int("expected a whole number of enrolments, at least 1", 1).default(20),
      sessions: _int("expected a whole number of sessions, at least 1", 1).default(10),
      commands: _int("expected a whole number of commands, at least 1", 1).default(60),
      websocket: _int("expected a whole number of messages, at least 1", 1).default(100),
    }),
    // How the control plane itself reaches nodes over SSH for the command API (seed 001); the CLI's
    // --identity/--known-hosts flags are the same settings for commands run from a workstation.
    ssh: _section({
      identity_file: _string().default(""),
      known_hosts_file: _string().default(""),
      trust_new_hosts: _bool().default(false),
    }),
    log_level: _string()
      .toUpperCase()
      .pipe(z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")} (any case)` }))
      .default("WARNING"),
  })
  .strict()
export type ChimeraConfig = z.output<typeof ChimeraConfig>

type FlagTree<T> = T extends readonly unknown[]
  ? T | string
  : T extends object
    ? { [K in keyof T]?: FlagTree<T[K]> }
    : T extends number | boolean
      ? T | string
      : T
/**
 * What flags may set: any subset of the configuration, e.g. `{ web: { port: 9000 } }`. A string where a
 * number, boolean or list belongs is read as an environment value is (`{ web: { port: args.port } }`),
 * so a bad one is reported as it was typed.
 */
export type ConfigFlags = FlagTree<z.input<typeof ChimeraConfig>>

/** Fields whose values must never appear in an error message or a log line. */
const SECRETS = new Set(["itsm.api_key", "notifications.pagerduty_api_key", "notifications.slack_webhook_url"])

/** CHIMERA_* variables that are process settings, not configuration sections (DESIGN.md contracts). */
export const RESERVED_ENV = new Set([
  "CHIMERA_DATA_DIR",
  "CHIMERA_DB",
  "CHIMERA_URL",
  "CHIMERA_TOKEN",
  "CHIMERA_CONFIG_FILE",
])

type Env = Record<string, string | undefined>
type Tree = Record<string, unknown>

export interface LoadConfigOptions {
  env?: Env
  flags?: ConfigFlags
  /** How to name a flag in errors, by config path (e.g. `{ "web.port": "--port" }`); default `flag <path>`. */
  flagNames?: Record<string, string>
  /** The file a flag names (the agent's --config-file); it replaces CHIMERA_CONFIG_FILE. */
  file?: string
}

/** A configuration and where each of its values came from. */
export interface LayeredConfig {
  config: ChimeraConfig
  /** The absolute path of the file read, if any. */
  file: string | null
  /** Who set exactly this path ("web.port"): the file's path, a variable's name or a flag; null: the default. */
  setBy(path: string): string | null
}

/** Fields holding a path, read from the config file's directory when the file sets them. */
const PATH_FIELDS = ["nix.config_path", "ssh.identity_file", "ssh.known_hosts_file"]

export function loadConfig(options: LoadConfigOptions = {}): ChimeraConfig {
  return loadLayeredConfig(options).config
}

export function loadLayeredConfig({
  env = process.env,
  flags = {},
  flagNames = {},
  file: fileFlag,
}: LoadConfigOptions = {}): LayeredConfig {
  const merged: Tree = {}
  const sources = new Map<string, string>()
  const file = fileFlag || env.CHIMERA_CONFIG_FILE
  const path = file ? resolve(file) : null
  if (path) {
    const tree = _readToml(path, fileFlag ? "--config-file" : "CHIMERA_CONFIG_FILE")
    _relativeTo(dirname(path), tree)
    _merge(merged, tree, [], () => path, sources)
  }
  _merge(merged, _fromEnv(env), [], (p) => `CHIMERA_${p.join("_").toUpperCase()}`, sources)
  _merge(
    merged,
    _coerceTree(flags as Tree, _defaults()),
    [],
    (p) => flagNames[p.join(".")] ?? `flag ${p.join(".")}`,
    sources,
  )

  const result = ChimeraConfig.safeParse(merged)
  if (result.success) return { config: result.data, file: path, setBy: (p) => sources.get(p) ?? null }
  throw new ConfigError(result.error.issues.map((issue) => _describe(issue, merged, sources)).join("\n"))
}

/** Where the control plane keeps its state: CHIMERA_DATA_DIR, or ~/.local/share/chimera. */
export function dataDir(env: Env = process.env): string {
  if (env.CHIMERA_DATA_DIR) return resolve(env.CHIMERA_DATA_DIR)
  return join(env.HOME || homedir(), ".local", "share", "chimera")
}

/** CHIMERA_DB, or the embedded SQLite database in the data directory. */
export function databaseUrl(env: Env = process.env): string {
  return env.CHIMERA_DB || `sqlite://${join(dataDir(env), "chimera.db")}`
}

function _readToml(path: string, via: string): Tree {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message
    throw new ConfigError(`config: cannot read ${path} (from ${via}): ${reason}`)
  }
  try {
    return Bun.TOML.parse(text) as Tree
  } catch (err) {
    // Bun's line and column point into this module, not the file, so they are left out. The parser
    // quotes the offending text, which may be a secret: keep the reason, drop the quote.
    const reason = (err as Error).message
      .replace(/^TOML Parse error: /, "")
      .replace(/"[^"\n]*"?/g, "…")
      .replace(/'[^'\n]{2,}'/g, "…")
    throw new ConfigError(`config: ${path}: invalid TOML: ${reason}`)
  }
}

/** Resolves the relative paths the file sets against its directory (a wrong type is left for the schema). */
function _relativeTo(dir: string, tree: Tree) {
  for (const field of PATH_FIELDS) {
    const [section = "", key = ""] = field.split(".")
    const table = tree[section]
    if (!_isTable(table)) continue
    const value = table[key]
    if (typeof value === "string" && value !== "") table[key] = resolve(dir, value)
  }
}

/** CHIMERA_<SECTION>_<FIELD> for every field the schema knows; an unknown one under a section is an error. */
function _fromEnv(env: Env): Tree {
  const out: Tree = {}
  const defaults = _defaults()
  const known = new Set<string>()
  for (const [section, value] of Object.entries(defaults)) {
    if (value === null || typeof value !== "object") {
      known.add(`CHIMERA_${section.toUpperCase()}`)
      const raw = env[`CHIMERA_${section.toUpperCase()}`]
      if (raw) out[section] = _coerce(raw, value)
      continue
    }
    for (const [field, fallback] of Object.entries(value)) {
      const name = `CHIMERA_${section}_${field}`.toUpperCase()
      known.add(name)
      const raw = env[name]
      if (!raw) continue // an empty variable counts as unset, as in most shells' `${VAR:-default}`
      out[section] = { ...(out[section] as Tree | undefined), [field]: _coerce(raw, fallback) }
    }
  }
  // A misspelt variable under a known section (CHIMERA_WEB_PROT) would otherwise be ignored silently.
  const sections = Object.keys(defaults).filter((s) => typeof defaults[s] === "object")
  for (const name of Object.keys(env)) {
    if (known.has(name) || RESERVED_ENV.has(name) || !env[name]) continue
    const section = sections.find((s) => name.startsWith(`CHIMERA_${s.toUpperCase()}_`))
    if (!section) continue
    const field = name.slice(`CHIMERA_${section}_`.length).toLowerCase()
    const fields = Object.keys(defaults[section] as Tree)
    throw new ConfigError(
      `config: ${section}.${field}: unknown setting (from ${name}); ${section} has ${fields.join(", ")}`,
    )
  }
  return out
}

const _defaults = (): Tree => ChimeraConfig.parse({}) as Tree

/** Reads the strings in a flag tree as the types of the fields they set (see `_coerce`). */
function _coerceTree(layer: Tree, like: Tree): Tree {
  const out: Tree = {}
  for (const [key, value] of Object.entries(layer)) {
    const model = like[key]
    if (typeof value === "string" && model !== undefined) out[key] = _coerce(value, model)
    else if (_isTable(value) && _isTable(model) && !Array.isArray(model)) out[key] = _coerceTree(value, model)
    else out[key] = value
  }
  return out
}

/** Environment values are strings; read them as the field's type, or leave them for the schema to reject. */
function _coerce(raw: string, like: unknown): unknown {
  const text = raw.trim()
  if (typeof like === "number") return /^[+-]?\d+(\.\d+)?$/.test(text) ? Number(text) : raw
  if (typeof like === "boolean") {
    if (/^(true|1|yes|on)$/i.test(text)) return true
    if (/^(false|0|no|off)$/i.test(text)) return false
    return raw
  }
  if (Array.isArray(like))
    return text
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "")
  return raw
}

const _isTable = (v: unknown): v is Tree => v !== null && typeof v === "object" && !Array.isArray(v)

/** Deep-merges `layer` into `into`, recording which source set each path. */
function _merge(
  into: Tree,
  layer: Tree,
  at: string[],
  label: (path: string[]) => string,
  sources: Map<string, string>,
) {
  for (const [key, value] of Object.entries(layer)) {
    if (value === undefined) continue
    const path = [...at, key]
    if (_isTable(value) && Object.getPrototypeOf(value) === Object.prototype) {
      if (!_isTable(into[key])) into[key] = {}
      if (!sources.has(path.join("."))) sources.set(path.join("."), label(path))
      _merge(into[key] as Tree, value, path, label, sources)
    } else {
      into[key] = value
      sources.set(path.join("."), label(path))
    }
  }
}

function _sourceOf(path: string[], sources: Map<string, string>): string {
  for (let n = path.length; n > 0; n--) {
    const source = sources.get(path.slice(0, n).join("."))
    if (source) return source
  }
  return "defaults"
}

function _describe(issue: z.core.$ZodIssue, merged: Tree, sources: Map<string, string>): string {
  const path = issue.path.map(String)
  if (issue.code === "unrecognized_keys") {
    return issue.keys
      .map((key) => {
        const where = [...path, key]
        const allowed = _allowedKeys(path)
        return `config: ${where.join(".")}: unknown setting (from ${_sourceOf(where, sources)}); ${path.length ? path.join(".") : "the configuration"} has ${allowed.join(", ")}`
      })
      .join("\n")
  }
  const name = path.join(".") || "(root)"
  const got = SECRETS.has(name) ? "" : `, got ${_show(_at(merged, path))}`
  return `config: ${name}: ${issue.message}${got} (from ${_sourceOf(path, sources)})`
}

function _allowedKeys(path: string[]): string[] {
  let schema: unknown = _defaults()
  for (const key of path) schema = _isTable(schema) ? schema[key] : undefined
  return _isTable(schema) ? Object.keys(schema) : []
}

function _at(tree: Tree, path: string[]): unknown {
  let value: unknown = tree
  for (const key of path) value = _isTable(value) ? value[key] : undefined
  return value
}

function _show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (Array.isArray(value)) return "a list"
  if (_isTable(value)) return "a table"
  return String(value)
}
