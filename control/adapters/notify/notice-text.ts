// The facts of a notice as every channel states them, so a Slack message, an email and a ticket say the
// same thing in the same order: what happened (the headline), then node, problem, severity, the
// desired and current closures, when (in UTC, utc-text.ts) and where to look. Channels format these;
// none invents its own wording.
import type { Notice } from "../../domain/notifications.ts"
import { utcText } from "../../domain/utc-text.ts"

const STEP_TAG: Record<Notice["step"], string> = {
  opened: "",
  updated: "Update: ",
  resolved: "Resolved: ",
  test: "Test: ",
}

/** One line saying what this notice is: "Resolved: web-1 unreachable". */
export function headline(notice: Notice): string {
  // Services refuse an empty subject or summary, and a title of control characters ends up empty.
  const title = _oneLine(notice.title) || _oneLine(notice.problem) || "Chimera notice"
  return `${STEP_TAG[notice.step]}${title}`
}

/** Label and value of each fact the notice carries, absent ones left out. */
export function facts(notice: Notice): [string, string][] {
  const out: [string, string][] = [
    ["Node", notice.node || "(fleet)"],
    ["Problem", notice.problem],
    ["Severity", notice.severity],
  ]
  if (notice.closures.desired) out.push(["Desired closure", notice.closures.desired])
  if (notice.closures.current) out.push(["Current closure", notice.closures.current])
  out.push(["Incident", notice.incidentId], ["At", utcText(notice.at)])
  if (notice.dashboardUrl) out.push(["Dashboard", notice.dashboardUrl])
  return out.map(([label, value]) => [label, _oneLine(value)])
}

/**
 * The facts, then the message, as plain text, for email bodies, work notes and comments. The message
 * is partly a node's words (a failed heal's error), so each of its lines is indented under
 * "Message:": none can start at the margin as a fact does, and the facts come first, where a node's
 * "Node: another-node" lines cannot push them out of sight.
 */
export function plainText(notice: Notice): string {
  const lines = facts(notice).map(([label, value]) => `${label}: ${value}`)
  const message = notice.message.trim()
  if (message === "") return lines.join("\n")
  const indented = message.split(/\r\n|[\n\r\v\f\u0085\u2028\u2029]/).map((l) => (l.trim() === "" ? "" : `  ${l}`))
  return [...lines, "", "Message:", ...indented].join("\n")
}

/**
 * At most `max` UTF-16 units (how these services count a string's length), cut between characters,
 * never inside a surrogate pair, with an ellipsis.
 */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text
  let out = ""
  for (const char of text) {
    if (out.length + char.length > max - 1) break
    out += char
  }
  return `${out}…`
}

function _oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a node name or title must stay on one line
  return text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim()
}
