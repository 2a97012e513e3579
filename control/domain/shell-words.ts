// The shell subset the command registry understands, and a parser that accepts nothing else. Risk is
// assessed on an allow-list: a line is low or medium only if every part of it is understood, so this
// parser refuses (`ok: false`) whatever it cannot read with certainty, and the registry rates a refused
// line high. Shell is too dynamic to enumerate its tricks (`${x@P}`, `$[x]`, namerefs, `printf -v`,
// arithmetic in subscripts, …); instead the subset leaves them no room:
//
// - simple commands joined by `;`, `&`, `&&`, `||`, `|`, `|&` and newlines;
// - words made of plain characters, single quotes (literal) and double quotes holding no `$`, no
//   backquote and no `!`; a backslash escapes one character (never a newline);
// - redirections `<`, `>`, `>>`, `&>`, `&>>`, and descriptor copies (`2>&1`, `>&-`);
// - nothing else: any `$` or backquote (every expansion and substitution), `(`, `)`, `{`, `}` (subshells,
//   groups, brace and extended-glob expansion, process substitution), an unquoted `!` (history
//   expansion, negation), here-documents and here-strings, `<>`, `>|`, `;;`, control characters,
//   backslash-newline, empty commands and unterminated quotes are refused.
//
// Globs (`*`, `?`, `[`) are allowed but marked on the word, so the assessment can refuse them where an
// expansion could change meaning (a program name, a flag, a redirection target).

/** A word as the shell would pass it (`text`) and as typed (`raw`). */
export interface Word {
  text: string
  raw: string
  /** Some character of it was quoted or escaped. */
  quoted: boolean
  /** It holds an unquoted `*`, `?` or `[…]`: the shell may replace it with file names. */
  glob: boolean
}

export type RedirectOp = "<" | ">" | ">>" | "&>" | "&>>" | ">&" | "<&"

export interface Redirect {
  op: RedirectOp
  target: Word
}

export interface SimpleCommand {
  words: Word[]
  redirects: Redirect[]
}

export type ParsedLine = { ok: true; commands: SimpleCommand[] } | { ok: false; reason: string }

class Refused extends Error {}
const refuse = (reason: string): never => {
  throw new Refused(reason)
}

const BLANK = new Set([" ", "\t"])
const ENDS_WORD = new Set([" ", "\t", "\n", ";", "&", "|", "<", ">"])
/** Unquoted characters that start syntax outside the subset. */
const UNQUOTED_REFUSED: Record<string, string> = {
  $: "a `$` expansion",
  "`": "a command substitution",
  "(": "a subshell, function or substitution `(`",
  ")": "a subshell, function or substitution `)`",
  "{": "a brace expansion or group `{`",
  "}": "a brace expansion or group `}`",
  "!": "an unquoted `!` (history expansion or negation)",
}

/** Parses LINE into simple commands, or says why it is outside the subset. */
export function parseShellLine(line: string): ParsedLine {
  try {
    return { ok: true, commands: _parse(line) }
  } catch (error) {
    if (error instanceof Refused) return { ok: false, reason: error.message }
    throw error
  }
}

function _parse(line: string): SimpleCommand[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
  const control = /[\u0000-\u0008\u000b-\u001f\u007f]/.exec(line)
  if (control) refuse(`a control character (U+${control[0].charCodeAt(0).toString(16).padStart(4, "0")})`)
  const commands: SimpleCommand[] = []
  let current: SimpleCommand = { words: [], redirects: [] }
  /** The operator that must be followed by a command (`&&`, `||`, `|`, `|&`), if any. */
  let awaiting: string | null = null
  let i = 0

  const endCommand = (op: string) => {
    const empty = current.words.length === 0 && current.redirects.length === 0
    if (empty) {
      if (op === "\n" || op === "end") {
        if (awaiting !== null && op === "end") refuse(`nothing after \`${awaiting}\``)
        return
      }
      refuse(`an empty command before \`${op}\``)
    }
    commands.push(current)
    current = { words: [], redirects: [] }
    awaiting = op === "&&" || op === "||" || op === "|" || op === "|&" ? op : null
  }

  while (i < line.length) {
    const ch = line[i] as string
    const next = line[i + 1]
    if (BLANK.has(ch)) {
      i++
    } else if (ch === "\n" || ch === ";" || ch === "|" || (ch === "&" && next !== ">")) {
      let op = ch
      if (ch === ";" && (next === ";" || next === "&")) refuse("`;;` or `;&` (case syntax)")
      if ((ch === "&" || ch === "|") && next === ch) op = ch + ch
      else if (ch === "|" && next === "&") op = "|&"
      endCommand(op)
      i += op.length
    } else if (ch === "<" || ch === ">" || ch === "&") {
      i = readRedirect(line, i, current)
    } else {
      const { word, end } = readWord(line, i)
      // A word of digits right before `<` or `>` is the descriptor the redirection applies to.
      if (!word.quoted && /^\d+$/.test(word.raw) && (line[end] === "<" || line[end] === ">")) i = end
      else {
        current.words.push(word)
        i = end
      }
    }
  }
  endCommand("end")
  if (commands.length === 0) refuse("no command")
  return commands
}

/** Reads the redirection at `at` into `cmd`; returns the index after its target. */
function readRedirect(line: string, at: number, cmd: SimpleCommand): number {
  const rest = line.slice(at, at + 3)
  if (rest.startsWith("<<")) refuse("a here-document or here-string")
  if (rest.startsWith("<>")) refuse("a read-write redirection `<>`")
  if (rest.startsWith(">|")) refuse("a redirection that overrides noclobber `>|`")
  if (rest.startsWith("<(") || rest.startsWith(">(")) refuse("a process substitution")
  const op = (["&>>", "&>", ">>", ">&", "<&", ">", "<"] as const).find((o) => rest.startsWith(o))
  if (op === undefined) return refuse(`an operator \`${rest}\` outside the subset`)
  let i = at + op.length
  while (BLANK.has(line[i] as string)) i++
  if (i >= line.length || ENDS_WORD.has(line[i] as string)) refuse(`a redirection \`${op}\` without a target`)
  const { word, end } = readWord(line, i)
  cmd.redirects.push({ op, target: word })
  return end
}

/** Reads one word from `start`: plain characters, quotes and escapes up to a blank or an operator. */
function readWord(line: string, start: number): { word: Word; end: number } {
  let text = ""
  let quoted = false
  let glob = false
  let i = start
  while (i < line.length && !ENDS_WORD.has(line[i] as string)) {
    const ch = line[i] as string
    if (ch === "'") {
      const close = line.indexOf("'", i + 1)
      if (close < 0) refuse("an unterminated single quote")
      text += line.slice(i + 1, close)
      quoted = true
      i = close + 1
    } else if (ch === '"') {
      i = readDoubleQuoted(line, i + 1, (s) => {
        text += s
      })
      quoted = true
    } else if (ch === "\\") {
      const escaped = line[i + 1]
      if (escaped === undefined || escaped === "\n") refuse("a backslash at the end of a line (line continuation)")
      text += escaped
      quoted = true
      i += 2
    } else if (Object.hasOwn(UNQUOTED_REFUSED, ch)) {
      return refuse(UNQUOTED_REFUSED[ch] as string)
    } else {
      // A lone `[` matches nothing and stays literal; marking it anyway only errs towards high.
      if (ch === "*" || ch === "?" || ch === "[") glob = true
      text += ch
      i++
    }
  }
  return { word: { text, raw: line.slice(start, i), quoted, glob }, end: i }
}

/** Reads a double-quoted string from `from` (after its `"`); returns the index after the closing `"`. */
function readDoubleQuoted(line: string, from: number, emit: (s: string) => void): number {
  let i = from
  for (;;) {
    const ch = line[i]
    if (ch === undefined) return refuse("an unterminated double quote")
    if (ch === '"') return i + 1
    if (ch === "$" || ch === "`") refuse("an expansion inside double quotes")
    if (ch === "!") refuse("a `!` inside double quotes (history expansion)")
    if (ch === "\\") {
      const escaped = line[i + 1]
      if (escaped === "\n") refuse("a backslash-newline inside double quotes")
      // Inside double quotes a backslash escapes only these; before anything else it stays.
      if (escaped === '"' || escaped === "\\") {
        emit(escaped)
        i += 2
        continue
      }
    }
    emit(ch)
    i++
  }
}
