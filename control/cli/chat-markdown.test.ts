// The assistant's markdown as the terminal shows it: tables aligned, code fenced, lists marked,
// emphasis styled; text arriving in pieces settles into the same blocks as text arriving whole; and
// whatever control characters the model (or a node's output it quotes) writes arrive escaped.
import { describe, expect, test } from "bun:test"
import { firstControl } from "../../tests/support/terminal.ts"
import { renderMarkdown, wrap } from "./chat-markdown.ts"
import { MarkdownStream } from "./chat-markdown-stream.ts"
import { styled } from "./output.ts"

const plain = { width: Number.POSITIVE_INFINITY, colors: false }
// The output layer's markers, made into what a NO_COLOR terminal receives (tests run without a TTY).
const shown = (lines: string[]) => lines.map(styled)

const ANSWER = [
  "## CPU on web-1",
  "",
  "Load is **high**; the top processes are:",
  "",
  "| Process | CPU % |",
  "|---------|------:|",
  "| java    | 45.2  |",
  "| mysqld  | 32.1  |",
  "",
  "1. Restart `nginx`",
  "2. Check the *logs*",
  "   - journal",
  "",
  "```sh",
  "systemctl restart nginx",
  "```",
  "",
  "> quoted",
].join("\n")

describe("terminal markdown", () => {
  test("headings, tables, lists, code and quotes are laid out, their markup gone", () => {
    expect(shown(renderMarkdown(ANSWER, plain))).toEqual([
      "CPU on web-1",
      "",
      "Load is high; the top processes are:",
      "",
      "┌─────────┬───────┐",
      "│ Process │ CPU % │",
      "├─────────┼───────┤",
      "│ java    │  45.2 │",
      "│ mysqld  │  32.1 │",
      "└─────────┴───────┘",
      "",
      "1. Restart `nginx`",
      "2. Check the logs",
      "   • journal",
      "",
      "```sh",
      "systemctl restart nginx",
      "```",
      "",
      "│ quoted",
    ])
  })

  test("with colours, code is boxed and spans lose their backticks", () => {
    const lines = shown(renderMarkdown("Run `ls`.\n\n```\nls -l\n```", { width: 80, colors: true }))
    expect(lines).toEqual(["Run ls.", "", "╭─", "│ ls -l", "╰─"])
  })

  test("paragraphs wrap at the width; colour markers take no room", () => {
    expect(wrap("one two three four five", 9)).toEqual(["one two", "three", "four five"])
    const lines = shown(renderMarkdown("**bold words** here and there", { width: 14, colors: true }))
    expect(lines).toEqual(["bold words", "here and there"])
  })

  test("control characters from the model arrive escaped, in cells and code too", () => {
    const hostile = "\x1b]0;owned\x07 \x1b[2J\r\u202e"
    const text = `# ${hostile}\n\n| a |\n|---|\n| ${hostile} |\n\n\`\`\`\n${hostile}\n\`\`\`\n\n${hostile}`
    for (const colors of [true, false]) {
      const out = shown(renderMarkdown(text, { width: 80, colors })).join("\n")
      expect(firstControl(out)).toBeNull()
      expect(out).toContain("\\x1b]0;owned\\x07")
    }
  })

  test("text streamed in pieces settles into the same blocks as the whole text", () => {
    const stream = new MarkdownStream()
    const blocks: string[] = []
    // Three characters at a time, as tokens arrive.
    for (let i = 0; i < ANSWER.length; i += 3) for (const t of stream.push(ANSWER.slice(i, i + 3))) blocks.push(t.type)
    // The last block can only be final once the text ends.
    expect(blocks).toEqual(["heading", "paragraph", "table", "list", "code"])
    expect(stream.draft).toBe("> quoted")
    expect(stream.end().map((t) => t.type)).toEqual(["blockquote"])
    expect(stream.draft).toBe("")
  })

  test("a paragraph is final at its blank line; an open code fence is not", () => {
    const stream = new MarkdownStream()
    expect(stream.push("First.\n\n").map((t) => t.type)).toEqual(["paragraph"])
    expect(stream.push("```\ncode\n\nmore\n")).toEqual([])
    expect(stream.push("```\n\nafter").map((t) => t.type)).toEqual(["code"])
    expect(stream.draft).toBe("after")
  })
})
