// What a terminal acts on, for tests that prove none of it reaches one: C0 controls (the newline that
// ends a line aside), DEL, C1 controls, bidi embeddings, overrides and isolates, zero-width and other
// format characters, the line and paragraph separators. Written out by code point, independently of
// the sanitiser it checks.
const ACTS: [number, number][] = [
  [0x00, 0x09],
  [0x0b, 0x1f],
  [0x7f, 0x9f],
  [0xad, 0xad],
  [0x61c, 0x61c],
  [0x200b, 0x200f],
  [0x2028, 0x202e],
  [0x2060, 0x2069],
  [0xfeff, 0xfeff],
]

/** The first character of `text` a terminal would act on, as `U+XXXX`, or null when there is none. */
export function firstControl(text: string): string | null {
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0
    if (ACTS.some(([lo, hi]) => code >= lo && code <= hi))
      return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`
  }
  return null
}
