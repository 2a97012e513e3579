// The assistant's markdown made into terminal lines: headings, paragraphs wrapped to the screen,
// lists (nested, numbered), tables with aligned columns, fenced code, quotes, rules; bold, italics,
// code spans and links inside them. marked's lexer reads the text; this file decides how it looks.
// The text is the model's (and may quote a node's output), so every piece is passed through
// terminalText before it is measured or shown: a control character arrives escaped (`\x1b`) and the
// layout counts the escaped width. Styling is written as output.ts's colour markers, which say() turns
// into colours only on a colour terminal, so the same lines serve plain output too.
import { Lexer, type Token, type Tokens } from "marked"
import { terminalLine } from "../../protocol/terminal-text.ts"
import { color, visibleWidth } from "./output.ts"

export interface RenderOptions {
  /** Columns to wrap paragraphs at (Infinity: no wrapping, as when stdout is not a terminal). */
  width: number
  /** Whether colours are on: without them code spans keep their backticks, so they still stand out. */
  colors: boolean
}

const TAB = "  "
const clean = (text: string) => terminalLine(text.replaceAll("\t", TAB).replaceAll("\n", " "))

/** Inline tokens as one styled string (no newlines: soft breaks become spaces, hard breaks "\n"). */
function inline(tokens: Token[] | undefined, o: RenderOptions): string {
  if (!tokens) return ""
  return tokens.map((t) => inlineToken(t, o)).join("")
}

function inlineToken(t: Token, o: RenderOptions): string {
  switch (t.type) {
    case "strong":
      return color.bold(inline(t.tokens, o))
    case "em":
      return color.italic(inline(t.tokens, o))
    case "del":
      return color.dim(inline(t.tokens, o))
    case "codespan":
      return o.colors ? color.cyan(clean(decodeEntities(t.text))) : `\`${clean(decodeEntities(t.text))}\``
    case "br":
      return "\n"
    case "link": {
      const label = inline(t.tokens, o)
      const href = clean(t.href)
      return label === href || `mailto:${label}` === href
        ? color.underline(label)
        : `${color.underline(label)} (${href})`
    }
    case "image":
      return `[image: ${clean(t.text)}] (${clean(t.href)})`
    case "text":
    case "escape":
      return "tokens" in t && t.tokens ? inline(t.tokens, o) : clean(decodeEntities(t.text))
    default:
      return clean("text" in t && typeof t.text === "string" ? decodeEntities(t.text) : t.raw)
  }
}

// marked hands inline text over with HTML entities for what it escaped; the terminal wants the characters.
const ENTITIES: Record<string, string> = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'" }
const decodeEntities = (text: string) => text.replace(/&(amp|lt|gt|quot|#39);/g, (e) => ENTITIES[e] ?? e)

/** Word-wraps a styled string to `width` columns (markers take none); hard breaks are kept. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  for (const paragraph of text.split("\n")) {
    let line = ""
    for (const word of paragraph.split(/ +/)) {
      if (word === "") continue
      const candidate = line === "" ? word : `${line} ${word}`
      if (line !== "" && visibleWidth(candidate) > width) {
        lines.push(line)
        line = word
      } else line = candidate
    }
    lines.push(line)
  }
  return lines
}

const pad = (text: string, width: number, align: Tokens.TableCell["align"]) => {
  const room = Math.max(0, width - visibleWidth(text))
  if (align === "right") return " ".repeat(room) + text
  if (align === "center") return " ".repeat(Math.floor(room / 2)) + text + " ".repeat(Math.ceil(room / 2))
  return text + " ".repeat(room)
}

function table(t: Tokens.Table, o: RenderOptions): string[] {
  const header = t.header.map((c) => inline(c.tokens, o))
  const rows = t.rows.map((r) => r.map((c) => inline(c.tokens, o)))
  const widths = header.map((h, i) => Math.max(visibleWidth(h), ...rows.map((r) => visibleWidth(r[i] ?? ""))))
  const line = (cells: string[]) => `│ ${cells.map((c, i) => pad(c, widths[i] ?? 0, t.align[i] ?? null)).join(" │ ")} │`
  const rule = (l: string, m: string, r: string) => color.dim(`${l}${widths.map((w) => "─".repeat(w + 2)).join(m)}${r}`)
  return [
    rule("┌", "┬", "┐"),
    line(header.map((h) => color.bold(h))),
    rule("├", "┼", "┤"),
    ...rows.map(line),
    rule("└", "┴", "┘"),
  ]
}

function code(t: Tokens.Code, o: RenderOptions): string[] {
  const body = t.text.replace(/\n$/, "").split("\n")
  const lang = t.lang ? clean(t.lang) : ""
  const lines = body.map((l) => `${color.dim("│")} ${color.cyan(terminalLine(l.replaceAll("\t", TAB)))}`)
  return o.colors
    ? [color.dim(lang ? `╭─ ${lang}` : "╭─"), ...lines, color.dim("╰─")]
    : [`\`\`\`${lang}`, ...body.map(clean), "```"]
}

function list(t: Tokens.List, o: RenderOptions): string[] {
  const start = typeof t.start === "number" ? t.start : 1
  const marks = t.items.map((item, i) => {
    if (item.task) return item.checked ? "[x]" : "[ ]"
    return t.ordered ? `${start + i}.` : "•"
  })
  const markWidth = Math.max(...marks.map((m) => m.length))
  return t.items.flatMap((item, i) => {
    const body = blocks(item.tokens, { ...o, width: o.width - markWidth - 1 }, !t.loose)
    const first = `${(marks[i] ?? "").padEnd(markWidth)} `
    return body.map((l, j) => (j === 0 ? first : " ".repeat(markWidth + 1)) + l)
  })
}

/** One block token as lines (no trailing blank line; `blocks` puts one between blocks). */
function block(t: Token, o: RenderOptions): string[] {
  switch (t.type) {
    case "heading": {
      const text = inline(t.tokens, o)
      return t.depth <= 2 ? [color.bold(color.underline(text))] : [color.bold(text)]
    }
    case "paragraph":
      return wrap(inline(t.tokens, o), o.width)
    case "text":
      return wrap(t.tokens ? inline(t.tokens, o) : clean(t.text), o.width)
    case "code":
      return code(t as Tokens.Code, o)
    case "table":
      return table(t as Tokens.Table, o)
    case "list":
      return list(t as Tokens.List, o)
    case "blockquote":
      return blocks(t.tokens ?? [], { ...o, width: o.width - 2 }).map((l) => `${color.dim("│")} ${l}`)
    case "hr":
      return [color.dim("─".repeat(Math.min(o.width, 40)))]
    case "space":
    case "def":
      return []
    default:
      return t.raw.replace(/\n+$/, "").split("\n").map(clean)
  }
}

/** Block tokens as lines, one blank line between blocks, none inside a tight list's item. */
export function blocks(tokens: Token[], o: RenderOptions, tight = false): string[] {
  const out: string[] = []
  for (const t of tokens) {
    const lines = block(t, o)
    if (lines.length === 0) continue
    if (out.length > 0 && !tight) out.push("")
    out.push(...lines)
  }
  return out
}

/** A whole markdown text as terminal lines. */
export function renderMarkdown(markdown: string, o: RenderOptions): string[] {
  return blocks(Lexer.lex(markdown.replace(/\r\n?/g, "\n")), o)
}
