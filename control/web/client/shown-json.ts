// Text from the fleet, as the page shows it. A node may report any string (a failed heal's error and
// output, a disk path, a command's output), and a bidi override (U+202E) or another control or format
// character in it would reorder or hide what the page says around it: a node could make an incident
// read as anything, and garble the delivery status next to it. So every string of every answer and
// event is escaped where JSON enters the page, as the CLI escapes it for a terminal (`\u202e`,
// `\x1b`), newlines and tabs kept: the person sees that something odd was there. Ids, store paths and
// the like never hold such characters (the API refuses them), so what the page sends back is unchanged.
import { terminalText } from "../../../protocol/terminal-text.ts"

export function parseShown<T>(json: string): T {
  return JSON.parse(json, (_key, value: unknown) => (typeof value === "string" ? terminalText(value) : value)) as T
}
