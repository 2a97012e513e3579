// Small formatting rules the views share: times (24-hour, local), relative times, sizes, short hashes,
// durations.

export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return "never"
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`
  return `${Math.floor(s / 86_400)}d ago`
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/** The first 12 characters of a Nix hash, as `chimera nodes list` shows them. */
export const short = (hash: string | null) => (hash ? hash.slice(0, 12) : "—")

export function ms(n: number): string {
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`
}

const two = (n: number) => String(n).padStart(2, "0")

const _day = (d: Date) => `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`
const _minute = (d: Date) => `${two(d.getHours())}:${two(d.getMinutes())}`
const _second = (d: Date) => `${_minute(d)}:${two(d.getSeconds())}`

/** A timestamp as local `YYYY-MM-DD HH:MM:SS`, 24-hour, which sorts and compares at a glance. */
export function when(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return `${_day(d)} ${_second(d)}`
}

/** Local `HH:MM:SS` only (today's events in a narrow column). */
export function clock(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return _second(d)
}

/**
 * A time axis's tick labels, as the tables write times (local, 24-hour): `HH:MM`, with seconds when
 * ticks are under a minute apart, the date alone when they are days apart. When the ticks span more
 * than one day, the first tick and the first of each later day also say their date, on a second line.
 * `ticks` and `step` are in seconds, as uPlot hands them to an axis's `values`.
 */
export function axisTimes(ticks: number[], step: number): string[] {
  const days = ticks.map((t) => _day(new Date(t * 1000)))
  if (step >= 86_400) return days
  const time = step < 60 ? _second : _minute
  const spansDays = days.length > 0 && days[0] !== days.at(-1)
  return ticks.map((t, i) => {
    const label = time(new Date(t * 1000))
    return spansDays && (i === 0 || days[i] !== days[i - 1]) ? `${label}\n${days[i]}` : label
  })
}

/** One line that says what an event means, from its data (shown as text, never as markup). */
export function eventSummary(e: { type: string; data: Record<string, unknown> }): string {
  const d = e.data
  const name = (p: unknown) => (typeof p === "string" ? p.replace(/^\/nix\/store\/([a-z0-9]{12})[^/]*$/, "$1") : "")
  switch (e.type) {
    case "drift.detected":
      return `${Array.isArray(d.kinds) ? d.kinds.join(", ") : "drift"} (desired ${name(d.desired)})`
    case "heal.succeeded":
      return `healed to ${name(d.desired)}${typeof d.durationMs === "number" ? ` in ${ms(d.durationMs)}` : ""}`
    case "heal.failed":
      return `attempt ${String(d.attempt ?? "?")}: ${typeof d.error === "string" ? d.error : "failed"}`
    case "heal.started":
      return `attempt ${String(d.attempt ?? "?")} toward ${name(d.desired)}`
    case "desired.changed":
      return `desired ${name(d.to)}`
    case "command.acked":
      return d.success === false ? "failed" : "ok"
    case "incident.opened":
    case "incident.updated":
    case "incident.resolved":
      return `${String(d.problem ?? "incident")} (${String(d.severity ?? "?")})${typeof d.ticketId === "string" ? `, ticket ${d.ticketId}` : ""}${typeof d.message === "string" ? `: ${d.message}` : ""}`
    case "reboot.required":
      return `booted ${name(d.booted)}, running ${name(d.current)}`
    case "reports.compacted":
      return `${String(d.dropped ?? "?")} reports compacted on the node (${String(d.criticalDropped ?? 0)} heal outcomes lost)`
    case "report.quarantined":
      return `report ${String(d.quarantinedSeq ?? "?")} refused (HTTP ${String(d.status ?? "?")}), set aside on the node`
    case "boot.rolled-back":
      return `unconfirmed ${name(d.unconfirmed)} rolled back to ${name(d.restored)} after a reboot`
    case "deployment.started":
      return `${String(d.id ?? "")} to ${Array.isArray(d.targets) ? d.targets.join(", ") : "?"} (${name(d.closure)})`
    case "deployment.progress":
      return `${String(d.phase ?? "")}: ${String(d.message ?? "")}`
    case "deployment.finished":
      return `${String(d.id ?? "")} ${String(d.status ?? "")}${typeof d.error === "string" ? `: ${d.error}` : ""}`
    default:
      return ""
  }
}
