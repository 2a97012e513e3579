// The facts of a notice as every channel states them, so a Slack message, an email and a ticket say the
// same thing in the same order: what happened (the headline), then node, problem, severity, the
// desired and current closures and where to look. Channels format these; none invents its own wording.
import type { Notice } from "../../domain/notifications.ts"

const STEP_TAG: Record<Notice["step"], string> = {
  opened: "",
  updated: "Update: ",
  resolved: "Resolved: ",
  test: "Test: ",
}

/** One line saying what this notice is: "Resolved: web-1 unreachable". */
export function headline(notice: Notice): string {
  return _oneLine(`${STEP_TAG[notice.step]}${notice.title}`)
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
  out.push(["Incident", notice.incidentId], ["At", notice.at])
  if (notice.dashboardUrl) out.push(["Dashboard", notice.dashboardUrl])
  return out.map(([label, value]) => [label, _oneLine(value)])
}

/** The message and the facts as plain text, for email bodies, work notes and comments. */
export function plainText(notice: Notice): string {
  const lines = facts(notice).map(([label, value]) => `${label}: ${value}`)
  return [notice.message.trim(), "", ...lines].join("\n").trim()
}

/** At most `max` characters, cut on a character (not a UTF-16 half) with an ellipsis. */
export function clip(text: string, max: number): string {
  const chars = Array.from(text)
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`
}

function _oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a node name or title must stay on one line
  return text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim()
}
