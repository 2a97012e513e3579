// Text that came from elsewhere (a node, a user, a remote answer) made safe to put on a terminal.
// A terminal obeys the bytes it is sent: ESC starts sequences that retitle the window (OSC), clear the
// screen or move the cursor (CSI); CR returns to the line's start so the next text overwrites what a
// person thought they read; U+009B is CSI on its own on many terminals; bidi overrides (U+202E) make a
// line read backwards; a newline in a one-line field forges a line of its own. Such characters are
// shown escaped (`\x1b`, `\r`, `\u202e`), never sent: the person sees that something odd was there.
// JSON output keeps its format: JSON.stringify already escapes C0, and `jsonSafe` escapes the rest.
// Colour is the programs' own escape codes, sent only where `useColor` (use-color.ts) says stdout takes
// them. The web dashboard escapes the strings it is sent with the same rule (control/web/client).

// Cc: C0, DEL and C1. Cf: format characters (bidi embeddings, overrides and isolates, zero-width
// characters, the BOM, soft hyphen). Zl/Zp: U+2028 and U+2029, which some terminals break lines on.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu
const UNSAFE_BUT_NEWLINE_AND_TAB = /(?![\n\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu
// The same class without the global flag, for `test`: a global regex keeps its lastIndex between calls.
const ANY_UNSAFE = new RegExp(UNSAFE.source, "u")
// What JSON.stringify leaves raw: DEL, C1, format characters and the line separators.
const UNSAFE_IN_JSON = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }

function escaped(ch: string): string {
  const named = NAMED[ch]
  if (named) return named
  const code = ch.codePointAt(0) ?? 0
  if (code < 0x80) return `\\x${code.toString(16).padStart(2, "0")}`
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/** JSON's own escape: `\uXXXX` per UTF-16 unit (a character above U+FFFF takes two). */
const jsonEscaped = (ch: string) =>
  Array.from({ length: ch.length }, (_, i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, "0")}`).join("")

/** One line for a terminal: every control and format character escaped, newlines and tabs too. */
export function terminalLine(text: string): string {
  return text.replace(UNSAFE, escaped)
}

/** Text of several lines for a terminal: newlines and tabs kept, every other control character escaped. */
export function terminalText(text: string): string {
  return text.replace(UNSAFE_BUT_NEWLINE_AND_TAB, escaped)
}

/** A JSON document whose strings hold no character a terminal would act on (still the same JSON). */
export function jsonSafe(json: string): string {
  return json.replace(UNSAFE_IN_JSON, jsonEscaped)
}

/** True when `text` holds a character `terminalLine` would escape (for fields that must never hold one). */
export function hasControlCharacters(text: string): boolean {
  return ANY_UNSAFE.test(text)
}
