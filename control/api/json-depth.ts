// How deeply a JSON body may nest, checked on the raw text BEFORE JSON.parse. The parser's cost on
// deep nesting is far out of proportion to the bytes: 40 MB of `[` took Bun 12 s of one core and
// 3 GB of memory to refuse, during which the control plane answered nobody. No body Chimera accepts
// nests beyond a dozen levels, so the scan stops at the first bracket past MAX_JSON_DEPTH; on a
// valid body it is one pass over the characters (tens of ms for a maximal report batch).
import type { Context } from "hono"
import { ChimeraError } from "../domain/errors.ts"

export const MAX_JSON_DEPTH = 64

const QUOTE = 34
const BACKSLASH = 92
const OPEN_ARRAY = 91
const OPEN_OBJECT = 123
const CLOSE_ARRAY = 93
const CLOSE_OBJECT = 125

/**
 * Whether `text` opens at most `max` arrays and objects in all, counting brackets inside strings too:
 * then it cannot nest deeper. Found by the runtime's own search, a tenth of the scan below (a
 * heartbeat's body: 0.1 against 1.2 µs), which only bodies with more brackets go on to.
 */
function fewOpenings(text: string, max: number): boolean {
  let n = 0
  for (let i = text.indexOf("{"); i !== -1; i = text.indexOf("{", i + 1)) if (++n > max) return false
  for (let i = text.indexOf("["); i !== -1; i = text.indexOf("[", i + 1)) if (++n > max) return false
  return true
}

/** The first nesting depth past `max` in `text`, or 0 when it stays within (strings are skipped). */
export function excessDepth(text: string, max = MAX_JSON_DEPTH): number {
  if (fewOpenings(text, max)) return 0
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i)
    if (inString) {
      if (ch === BACKSLASH) i++
      else if (ch === QUOTE) inString = false
    } else if (ch === QUOTE) inString = true
    else if (ch === OPEN_ARRAY || ch === OPEN_OBJECT) {
      if (++depth > max) return depth
    } else if (ch === CLOSE_ARRAY || ch === CLOSE_OBJECT) depth--
  }
  return 0
}

/**
 * Reads the request's body as text (Hono caches it, so the JSON validator parses this same text
 * afterwards) and refuses one nested too deeply with a 400. Returns the text, for a caller that
 * parses it itself.
 */
export async function checkJsonDepth(c: Context): Promise<string> {
  const text = await c.req.text()
  if (excessDepth(text) > 0)
    throw new ChimeraError(
      "INVALID_JSON",
      `the request body nests deeper than ${MAX_JSON_DEPTH} levels of arrays and objects; no Chimera request does`,
    )
  return text
}
