// Structured logs, one JSON object a line on stderr, one logger per module:
//   const log = createLogger("heal"); log.info("healed", { node, from, to, ms })
// Secrets are redacted here, at the one place every log line passes, not case by case: any field
// whose name looks like a credential is replaced, and so is any string that looks like a Chimera token.
export type LogLevel = "debug" | "info" | "warning" | "error"

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40 }
const SECRET_KEY = /token|secret|password|passwd|credential|api_?key|authorization|cookie/i
const SECRET_VALUE = /\bchm_[a-z]+_[A-Za-z0-9_-]{16,}/g

let threshold: number = ORDER.warning
let sink: (line: string) => void = (line) => process.stderr.write(`${line}\n`)

/** Accepts seed 000's names too (`WARNING`, `INFO`, `DEBUG`, `ERROR`, `CRITICAL`). */
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
  if (typeof value === "string") return value.replace(SECRET_VALUE, "chm_[redacted]")
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
    sink(JSON.stringify(line))
  }
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warning", m, f),
    error: (m, f) => emit("error", m, f),
  }
}
