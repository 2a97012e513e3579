// BENCHMARKS.md is written in pieces. A run replaces the sections it measured, each from its "### "
// heading to the next, matched by the heading's title (the words before " (", so a changed target
// still matches), and the lines above the first section when it brings its own; every other section
// stays as it was, since several are measured by separate `--only` runs or written by hand.

interface Section {
  title: string
  text: string
}

/** The heading's words before " (": "### Drift detected and healed (target: …)" → "### Drift detected and healed". */
const titleOf = (heading: string) => {
  const at = heading.indexOf(" (")
  return (at < 0 ? heading : heading.slice(0, at)).trim()
}

/** The text before the first section, and the sections in order. */
function split(markdown: string): { head: string; sections: Section[] } {
  const starts: number[] = []
  for (let at = markdown.startsWith("### ") ? 0 : markdown.indexOf("\n### "); at >= 0; ) {
    const start = markdown[at] === "\n" ? at + 1 : at
    starts.push(start)
    at = markdown.indexOf("\n### ", start)
  }
  const head = markdown.slice(0, starts[0] ?? markdown.length)
  const sections = starts.map((start, i) => {
    const text = markdown.slice(start, starts[i + 1] ?? markdown.length)
    return { title: titleOf(text.slice(0, text.indexOf("\n") < 0 ? text.length : text.indexOf("\n"))), text }
  })
  return { head, sections }
}

const block = (text: string) => `${text.trim()}\n\n`

/**
 * `old` with each section of `produced` in place of the one of the same title (or added at the end),
 * and `produced`'s lines above its first section in place of `old`'s, after its first line (the
 * document's "# " title), when `produced` has any.
 */
export function replaceSections(old: string, produced: string): string {
  const was = split(old)
  const now = split(produced)
  const byTitle = new Map(now.sections.map((s) => [s.title, s]))
  const placed = new Set<string>()
  const sections = was.sections.map((s) => {
    const fresh = byTitle.get(s.title)
    if (!fresh) return block(s.text)
    placed.add(s.title)
    return block(fresh.text)
  })
  for (const s of now.sections) if (!placed.has(s.title)) sections.push(block(s.text))
  const title = was.head.startsWith("# ") ? was.head.slice(0, was.head.indexOf("\n") + 1 || undefined) : ""
  const head = now.head.trim() ? `${title}\n${block(now.head)}` : block(was.head)
  return `${head}${sections.join("")}`.trimEnd().concat("\n")
}
