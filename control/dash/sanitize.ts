// Node-provided text (ids, hostnames, paths, error messages) reaches the terminal only through here: a
// hostile or broken node must not be able to move the cursor, retitle the window, hide text or write
// to the clipboard with escape sequences. Control characters (C0, DEL, C1, which holds the 8-bit CSI)
// become `?`, and the bidirectional overrides that reorder what a reader sees are dropped. A shared
// sanitiser for all CLI output may replace this one; the rule here is the minimum the dashboard needs.

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export function sanitize(text: string): string {
  return text.replace(BIDI, "").replace(CONTROL, "?")
}
