// Markdown arriving a few characters at a time, split into what is final and what may still change.
// A block (paragraph, table, list, fenced code) is final once the lexer sees another block after it,
// or, for a paragraph, heading or rule, once a blank line ends it: only then can it be laid out (a
// table's column widths depend on its last row). The rest stays pending and is shown as a draft.
import { Lexer, type Token } from "marked"

const ENDED_BY_BLANK_LINE = new Set(["paragraph", "heading", "hr"])

export class MarkdownStream {
  private pending = ""

  /** Adds text; returns the blocks it completed, in order. */
  push(text: string): Token[] {
    this.pending += text.replace(/\r\n?/g, "\n")
    return this.take(false)
  }

  /** The text is complete: every block left is final. */
  end(): Token[] {
    return this.take(true)
  }

  /** What is not final yet, as it was written. */
  get draft(): string {
    return this.pending
  }

  private take(all: boolean): Token[] {
    if (this.pending === "") return []
    const tokens = Lexer.lex(this.pending)
    let last = tokens.length - 1
    while (last >= 0 && tokens[last]?.type === "space") last--
    if (last < 0) {
      if (all) this.pending = ""
      return []
    }
    const lastToken = tokens[last] as Token
    const closed = all || (ENDED_BY_BLANK_LINE.has(lastToken.type) && /\n\n$/.test(this.pending))
    const final = closed ? tokens : tokens.slice(0, last)
    const used = final.map((t) => t.raw).join("")
    // The tokens' raw text is the source, piece by piece; should a lexer version ever differ, nothing
    // is split rather than something shown twice.
    if (!this.pending.startsWith(used)) return all ? this.flushAll(tokens) : []
    this.pending = this.pending.slice(used.length)
    return final.filter((t) => t.type !== "space")
  }

  private flushAll(tokens: Token[]): Token[] {
    this.pending = ""
    return tokens.filter((t) => t.type !== "space")
  }
}
