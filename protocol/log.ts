// Structured logs, one JSON object a line on stderr, one logger per module:
//   const log = createLogger("heal"); log.info("healed", { node, from, to, ms })
// Secrets are redacted here, at the one place every log line passes, not case by case: any field
// whose name looks like a credential is replaced, and so is any string that looks like a Chimera token,
// a JWT, a password hash or a bearer header. The API's error bodies, its answers and the audit log
// pass through the same `redact`. A line holds no character a terminal would act on (jsonSafe): logs
// carry text from nodes and end up on someone's terminal.
import { jsonSafe } from "./terminal-text.ts"

export type LogLevel = "debug" | "info" | "warning" | "error"

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40 }
const SECRET_KEY = /token|secret|password|passwd|passphrase|credential|api_?key|private_?key|authorization|cookie|sudo/i
/** The words that make a value typed after `NAME=` secret (`PGPASSWORD=x`, `--api-key=x`); secret-stream.ts holds their starts. */
export const SECRET_WORDS = ["password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key"]
/** How many letters of a variable's or flag's name may stand on either side of a secret word. */
export const NAME_AROUND = 64
/** Any of SECRET_WORDS, as regex source. */
export const SECRET_WORD = `(?:${SECRET_WORDS.join("|")})`
/** What `redactText` replaces, in order; secret-stream.ts holds each one's unfinished form, in the same order. */
export const SECRET_VALUES: [RegExp, string][] = [
  [/\bchm_[a-z]+_[A-Za-z0-9_-]{16,}/g, "chm_[redacted]"],
  // A JWT begins where a run of its characters begins: with `\b` instead, `eyJ-eyJ-…` (a node's report)
  // was a start every four characters, each scanned to the run's end for a `.`: quadratic, seconds.
  // So one glued to a word by `-` (`x-eyJ…`) is no longer taken; after any other separator it is.
  [/(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, "[redacted-jwt]"],
  [/\$argon2(?:id|i|d)\$[^\s"']+/g, "[redacted-hash]"],
  // RFC 6750 token68 characters only, so a match stops at the quote that closes a JSON string.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{16,}/gi, "$1 [redacted]"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, "[redacted-private-key]"],
  // A secret handed to a command as it is typed: `PGPASSWORD=x psql`, `--password=x`. Only `=`: a
  // `field: message` error ("password: expected at least 12 characters") must stay readable. What
  // comes before the key is looked at, not taken, so `A='x'B_TOKEN=y` has both values replaced. The
  // name around the word is bounded: unbounded, a long run of letters holding the word many times
  // (`tokentoken…`, 64 KiB of a node's report) took the matcher quadratic time, seconds per answer.
  [
    new RegExp(
      `(?<![^\\s;&|'"])((?:--?)?[A-Za-z_-]{0,${NAME_AROUND}}${SECRET_WORD}[A-Za-z_-]{0,${NAME_AROUND}}=)("[^"]*"|'[^']*'|[^\\s"';&|]+)`,
      "gi",
    ),
    "$1[redacted]",
  ],
  // A URL's password (`https://ci:hunter2@cache.example/…`, `postgres://app:pw@db/x`): Nix and curl
  // print the URLs they fetch, so a heal's output, a relayed command's or a deploy's log may carry
  // one. Taken from the `//`, not the scheme, so a piece that ends inside `https:/` is still read
  // whole; the password runs to the authority's last `@`, as URL parsers read it. Bounded both ways.
  [/(\/\/[^\s/?#@:"'<>\\]{0,256}:)[^\s/?#"'<>\\]{1,256}@/g, "$1[redacted]@"],
]

/** Replaces every secret-looking substring of `text`. */
export function redactText(text: string): string {
  let out = text
  for (const [pattern, replacement] of SECRET_VALUES) out = out.replace(pattern, replacement)
  return out
}

/**
 * `redactText` applied to every string inside a JSON value, keys and structure untouched: the way to
 * redact something that will be serialized, since replacing inside serialized JSON can cut a string
 * at an escaped quote (`GH_TOKEN=\"a b\"`) and leave invalid JSON.
 */
export function redactStrings(value: unknown): unknown {
  if (typeof value === "string") return redactText(value)
  if (value === null || typeof value !== "object") return value
  if (Array.isArray(value)) return value.map(redactStrings)
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = redactStrings(v)
  return out
}

/** A URL fit for a log line: any `user:password@` in it replaced. */
export function displayUrl(url: string): string {
  // Up to the authority's last `@`, as URL parsers read it: in `http://u:p@ss@host/` the host is `host`.
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1[redacted]@")
}

/**
 * A URL that carries a password by design (CHIMERA_DB), fit for a message: everything between its
 * scheme and its last `@` replaced. A person types that password, and one with an unencoded `/`, `?`
 * or `#` ends the authority early for a URL parser (`postgres://u:s3cr@t/pw@db/x` has the host `t`),
 * so `displayUrl` would leave the rest of it on show.
 */
export function displayCredentialUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, "$1[redacted]@")
}

/** True when `text` holds something `redactText` would replace (cheap enough for every answer). */
export function looksSecret(text: string): boolean {
  return SECRET_VALUES.some(([pattern]) => {
    pattern.lastIndex = 0
    const hit = pattern.test(text)
    pattern.lastIndex = 0
    return hit
  })
}

const JSON_ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", b: "\b", f: "\f" }

/**
 * `looksSecret` for serialized JSON, reading each escape as the character it stands for: in the text
 * `"a\nchm_api_…"` the token follows the letter `n` of the escape, no word boundary, and would pass.
 * The structure left around the strings (quotes, commas) only ever separates, as a string's ends do.
 */
export function looksSecretInJson(json: string): boolean {
  if (!json.includes("\\")) return looksSecret(json)
  return looksSecret(
    json.replace(/\\(?:u([0-9A-Fa-f]{4})|(.))/g, (_, hex: string | undefined, ch: string) =>
      hex === undefined ? (JSON_ESCAPES[ch] ?? ch) : String.fromCharCode(Number.parseInt(hex, 16)),
    ),
  )
}

let threshold: number = ORDER.warning
let sink: (line: string) => void = (line) => process.stderr.write(`${line}\n`)

/** Also accepts `log_level`'s upper-case names (`WARNING`, `INFO`, `DEBUG`, `ERROR`, `CRITICAL`). */
export function setLogLevel(level: string): void {
  const normal =
    level.toLowerCase() === "critical" ? "error" : level.toLowerCase() === "warn" ? "warning" : level.toLowerCase()
  threshold = ORDER[normal as LogLevel] ?? ORDER.warning
}

/** Where lines go (tests capture them to prove nothing secret is written). */
export function setLogSink(write: (line: string) => void): void {
  sink = write
}

export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactText(value)
  if (value instanceof Error) return { name: value.name, message: redact(value.message) }
  if (value === null || typeof value !== "object" || depth > 6) return value
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? "[redacted]" : redact(v, depth + 1)
  return out
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

export function createLogger(module: string): Logger {
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < threshold) return
    const line = { at: new Date().toISOString(), level, module, msg: redact(msg), ...(redact(fields ?? {}) as object) }
    sink(jsonSafe(JSON.stringify(line)))
  }
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warning", m, f),
    error: (m, f) => emit("error", m, f),
  }
}
