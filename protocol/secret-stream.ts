// Redaction of text that arrives in pieces (a terminal's output, read as it grows): `redactText` on each
// piece alone misses a secret cut in two, since neither half looks like one. So the end of what has
// arrived is held back while it could be the beginning of a secret, or a secret still growing (a token
// whose last characters have not come yet), and goes out with what follows once that decides, or at the
// end. Output that ends in whitespace, or in a word no secret begins with, is held not at all; nothing
// is dropped or reordered. Each pattern of log.ts's SECRET_VALUES has its unfinished form here, in the
// same order: any text a match of the pattern may start with, reaching the end of what has arrived.
import { NAME_AROUND, redactText, SECRET_VALUES, SECRET_WORD, SECRET_WORDS } from "./log.ts"

/** Any non-empty prefix of `word`, as regex source: `ab` → `a(?:b)?`. */
function prefixOf(word: string): string {
  const escaped = [...word].map((ch) => ch.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&"))
  return escaped.reduceRight((rest, ch) => (rest === "" ? ch : `${ch}(?:${rest})?`), "")
}

const KEYWORD = SECRET_WORD
const KEYWORD_START = SECRET_WORDS.map(prefixOf).join("|")
const PRIVATE_KEY_END = "-----END [A-Z ]*PRIVATE KEY-----"

/** Past this many characters held, a pattern's unfinished form is no longer looked for. */
const TOKEN_WINDOW = 8 * 1024
const PRIVATE_KEY_WINDOW = 64 * 1024
/** Never more is held: a run this long that still looks unfinished is no secret (keys are a few KiB). */
const MAX_HELD = PRIVATE_KEY_WINDOW

/** The unfinished form of each SECRET_VALUES pattern, and how far back from the end it is looked for. */
export const UNFINISHED: [RegExp, number][] = [
  [/\b(?:c(?:h(?:m(?:_(?:[a-z]+(?:_[A-Za-z0-9_-]*)?)?)?)?)?)$/, TOKEN_WINDOW],
  [/(?<![A-Za-z0-9_-])(?:e(?:y(?:J[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2})?)?)$/, TOKEN_WINDOW],
  [new RegExp(`\\$(?:${prefixOf("argon2id")}|argon2d|argon2(?:id|i|d)\\$[^\\s"']*)?$`), TOKEN_WINDOW],
  [
    new RegExp(`\\b(?:${prefixOf("bearer")}|${prefixOf("basic")}|(?:bearer|basic)\\s+[A-Za-z0-9._~+/=-]*)$`, "i"),
    TOKEN_WINDOW,
  ],
  [
    new RegExp(
      `(?:${prefixOf("-----BEGIN ")}|-----BEGIN [A-Z ]*(?:${prefixOf("PRIVATE KEY-----")})?|` +
        `-----BEGIN [A-Z ]*PRIVATE KEY-----(?:(?!${PRIVATE_KEY_END})[\\s\\S])*)$`,
    ),
    PRIVATE_KEY_WINDOW,
  ],
  // The separators are those before a key in log.ts's pattern; a key still being written holds as well
  // as its value, since the value alone (`hunter2`) looks like nothing.
  [
    new RegExp(
      `(?<![^\\s;&|'"])(?:--?)?[A-Za-z_-]{0,${NAME_AROUND}}(?:${KEYWORD}[A-Za-z_-]{0,${NAME_AROUND}}(?:=(?:"[^"]*|'[^']*|[^\\s"';&|]*))?|${KEYWORD_START})$`,
      "i",
    ),
    TOKEN_WINDOW,
  ],
  // A URL's authority not yet ended: its password may still be coming, or its `@`.
  [/\/\/[^\s/?#@:"'<>\\]{0,256}(?::[^\s/?#"'<>\\]{0,256})?$/, TOKEN_WINDOW],
]

/** Where the held-back end of `text` begins: text.length when nothing there could be an unfinished secret. */
function holdFrom(text: string): number {
  let from = text.length
  for (const [pattern, window] of UNFINISHED) {
    const start = Math.max(0, text.length - window)
    const found = pattern.exec(start === 0 ? text : text.slice(start))
    if (found) from = Math.min(from, start + found.index)
  }
  if (from === text.length) return from
  // Never cut through a finished secret: what goes out is redacted apart from what is held.
  for (let moved = true; moved; ) {
    moved = false
    for (const [pattern] of SECRET_VALUES) {
      pattern.lastIndex = 0
      for (let m = pattern.exec(text); m !== null && m.index < from; m = pattern.exec(text)) {
        if (m.index + m[0].length > from) {
          from = m.index
          moved = true
        }
        if (m[0].length === 0) pattern.lastIndex++
      }
      pattern.lastIndex = 0
    }
  }
  return text.length - from > MAX_HELD ? text.length : from
}

/** How far back a match's left edge looks: a word boundary, an assignment's key. */
const CONTEXT = 256
const KEY_CHAR = /[A-Za-z_-]/

/** The end of `text` a match beginning after it depends on: the key-like word it ends in, and one more character. */
function contextOf(text: string): string {
  let start = text.length
  while (start > 0 && text.length - start < CONTEXT && KEY_CHAR.test(text[start - 1] as string)) start--
  return text.slice(Math.max(0, start - 1))
}

export interface SecretStream {
  /** What of the text so far may go out now, redacted; the rest is held for the next piece. */
  push(piece: string): string
  /** The held rest, redacted: the text has ended (or nothing more is waited for). */
  end(): string
}

export function createSecretStream(): SecretStream {
  // `before` is the end of what went out, as it was: each piece is redacted as it stands in the whole
  // text, not as if a line began where it does.
  let before = ""
  let held = ""
  /** text[before.length, upTo) redacted; what follows it is held. */
  function release(text: string, upTo: number): string {
    const out = redactText(text.slice(0, upTo))
    // A match reaching back into what went out was held, so `before` comes out unchanged.
    const shown = out.startsWith(before) ? out.slice(before.length) : redactText(text.slice(before.length, upTo))
    before = contextOf(text.slice(0, upTo))
    held = text.slice(upTo)
    return shown
  }
  return {
    push(piece) {
      const text = before + held + piece
      return release(text, Math.max(before.length, holdFrom(text)))
    },
    end() {
      const text = before + held
      const out = release(text, text.length)
      before = ""
      return out
    },
  }
}
