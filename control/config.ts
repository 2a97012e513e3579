// Chimera's configuration (the sections and defaults of config-schema.ts), read from the
// TOML file named by CHIMERA_CONFIG_FILE, then from CHIMERA_<SECTION>_<FIELD> environment variables, then
// from command-line flags, each layer overriding the one before. It is parsed once, at start: a bad value
// fails there with the field's path, where the value came from and what was expected, e.g.
//   config: web.port: expected an integer from 1 to 65535, got "http" (from CHIMERA_WEB_PORT)
// Unknown keys are errors, so a typo cannot silently fall back to a default. Secret values are never
// echoed in an error. A relative path set in the file (nix.config_path, ssh.*_file) is read from the
// file's directory, as a path in /etc/chimera/config.toml means one beside it; from the environment or
// a flag it is read from the working directory; a leading `~/` in the file or the environment is HOME.
// The process-level settings (CHIMERA_DATA_DIR, CHIMERA_DB, CHIMERA_URL,
// CHIMERA_TOKEN, CHIMERA_CONFIG_FILE) are not sections; `dataDir` and `databaseUrl` resolve the first two.
import { readFileSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join, resolve } from "node:path"
import type { z } from "zod"
import { ChimeraConfig } from "./config-schema.ts"

export class ConfigError extends Error {
  readonly code = "E_CONFIG"
  override name = "ConfigError"
  constructor(
    message: string,
    /** Every value refused came from a command-line flag: a usage mistake, not the configuration's. */
    readonly fromFlags = false,
  ) {
    super(message)
  }
}

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
const SECRETS = new Set([
  "itsm.api_key",
  "notifications.pagerduty_api_key",
  "notifications.slack_webhook_url",
  "notifications.email_password",
  "ai.api_key",
])

/**
 * CHIMERA_* variables that are process settings, not configuration sections: where state and the database
 * live, how the CLI reaches the control plane and proves who it is, which file to read.
 */
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
const PATH_FIELDS = [
  "nix.config_path",
  "ssh.identity_file",
  "ssh.known_hosts_file",
  "notifications.slack_webhook_url_file",
  "notifications.pagerduty_api_key_file",
  "notifications.email_password_file",
  "notifications.email_ca_file",
  "itsm.api_key_file",
  "ai.api_key_file",
]

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
    _resolvePaths(tree, (value) => resolve(dirname(path), _inHome(value, env)))
    _merge(merged, tree, [], () => path, sources)
  }
  const fromEnv = _fromEnv(env)
  _resolvePaths(fromEnv, (value) => _inHome(value, env))
  _merge(merged, fromEnv, [], (p) => `CHIMERA_${p.join("_").toUpperCase()}`, sources)
  _merge(
    merged,
    _coerceTree(flags as Tree, _defaults()),
    [],
    (p) => flagNames[p.join(".")] ?? `flag ${p.join(".")}`,
    sources,
  )

  const result = ChimeraConfig.safeParse(merged)
  if (result.success) return { config: result.data, file: path, setBy: (p) => sources.get(p) ?? null }
  const fromFlags = result.error.issues.every((issue) => {
    const source = _sourceOf(issue.path.map(String), sources)
    return source.startsWith("-") || source.startsWith("flag ")
  })
  throw new ConfigError(result.error.issues.map((issue) => _describe(issue, merged, sources)).join("\n"), fromFlags)
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

// No shell reads a TOML file or a unit's Environment= line, so `~/.ssh/id_ed25519`, as ssh_config and
// the documented defaults write it, would otherwise name a directory called "~".
function _inHome(value: string, env: Env): string {
  return value === "~" || value.startsWith("~/") ? join(env.HOME || homedir(), value.slice(1)) : value
}

/** Rewrites the path fields a layer sets (a wrong type is left for the schema). */
function _resolvePaths(tree: Tree, rewrite: (value: string) => string) {
  for (const field of PATH_FIELDS) {
    const [section = "", key = ""] = field.split(".")
    const table = tree[section]
    if (!_isTable(table)) continue
    const value = table[key]
    if (typeof value === "string" && value !== "") table[key] = rewrite(value)
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
  // A field another one makes necessary may be set nowhere: there is no value or source to show.
  if (issue.code === "custom" && _at(merged, path) === undefined) return `config: ${name}: ${issue.message}; not set`
  const got = SECRETS.has(name) ? "" : `, got ${_show(_at(merged, path))}`
  return `config: ${name}: ${issue.message}${got} (from ${_sourceOf(path, sources)})`
}

function _allowedKeys(path: string[]): string[] {
  let schema: unknown = _defaults()
  for (const key of path) schema = _isTable(schema) ? schema[key] : undefined
  return _isTable(schema) ? Object.keys(schema) : []
}

/** The value at a path; a list's items are reached by index (`ai.models.0`). */
function _at(tree: Tree, path: string[]): unknown {
  let value: unknown = tree
  for (const key of path) value = value !== null && typeof value === "object" ? (value as Tree)[key] : undefined
  return value
}

function _show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (Array.isArray(value)) return "a list"
  if (_isTable(value)) return "a table"
  return String(value)
}
