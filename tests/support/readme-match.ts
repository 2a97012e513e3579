// Whether what a command printed is what the README shows. Every line the README shows must be one
// of the lines printed (any order: SSH targets answer in any order), where the values that differ
// from run to run may differ: times, durations, decimals (load, memory), event and deploy ids, loopback
// addresses, JSON web tokens. Values a reader would copy from one command into the next (store paths,
// tokens, session ids) are learned: the first time the README's value meets the printed one they are
// paired, from then on the printed line must carry that same value, and commands get the printed one
// pasted in (`paste`). Runs of spaces match any run (table columns widen), and `…` in a shown line
// stands for text the README leaves out.

type Kind = { name: string; pattern: string; learned: boolean }

const NIX32 = "[0-9a-df-np-sv-z]"
const KINDS: Kind[] = [
  { name: "store-hash", pattern: `(?<=/nix/store/)${NIX32}{32}(?=-)`, learned: true },
  { name: "token", pattern: "chm_[a-z]+_[A-Za-z0-9_-]{16,}", learned: true },
  { name: "cli-session", pattern: "chimera-cli-[0-9a-f]{16}", learned: true },
  { name: "jwt", pattern: "eyJ[\\w-]+\\.[\\w-]+\\.[\\w-]+", learned: false },
  { name: "uuid", pattern: "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", learned: false },
  { name: "time", pattern: "\\d{4}-\\d\\d-\\d\\d[T ]\\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?Z?", learned: false },
  { name: "deploy-id", pattern: "\\b\\d{14}-[0-9a-f]{8}\\b", learned: false },
  { name: "event-id", pattern: "^\\d+(?=\\s+\\d{4}-\\d\\d-\\d\\dT)", learned: false },
  { name: "address", pattern: "\\b127\\.0\\.0\\.\\d{1,3}\\b(?!:8080)", learned: false },
  { name: "duration", pattern: "\\b\\d+(?:\\.\\d+)?\\s?(?:ms|s)\\b", learned: false },
  { name: "decimal", pattern: "\\b\\d+\\.\\d+\\b", learned: false },
  { name: "hash12", pattern: `\\b${NIX32}{12}\\b`, learned: true },
]
const ANY = new RegExp(KINDS.map((k) => `(${k.pattern})`).join("|"), "g")

const _literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+")

export interface LineMatcher {
  /** Which shown lines are not among the printed ones (empty: all are). Learns pairings on success. */
  missing(expected: string[], printed: string): string[]
  /** A command with every learned value pasted in. */
  paste(command: string): string
}

export function createLineMatcher(): LineMatcher {
  const learned = new Map<string, string>()

  const known = (kind: Kind, shown: string): string | null => {
    if (kind.name === "hash12")
      for (const [from, to] of learned) if (from.length === 32 && from.startsWith(shown)) return to.slice(0, 12)
    return learned.get(shown) ?? null
  }

  /** A regex for one shown line, and the learned kinds it would pair, in group order. */
  const compile = (shown: string) => {
    let source = ""
    let at = 0
    const pairs: string[] = []
    for (const m of shown.matchAll(ANY)) {
      const index = m.slice(1).findIndex((g) => g !== undefined)
      const kind = KINDS[index] as Kind
      source += _literal(shown.slice(at, m.index)).replaceAll("…", ".*?")
      const value = kind.learned ? known(kind, m[0]) : null
      if (value) source += _literal(value)
      else if (kind.learned) {
        source += `(${kind.pattern.replace(/\(\?<=[^)]*\)|\(\?=[^)]*\)/g, "")})`
        pairs.push(m[0])
      } else source += `(?:${kind.pattern.replace(/^\^/, "")})`
      at = (m.index ?? 0) + m[0].length
    }
    source += _literal(shown.slice(at)).replaceAll("…", ".*?")
    return { regex: new RegExp(`^\\s*${source}\\s*$`), pairs }
  }

  return {
    missing(expected, printed) {
      const lines = printed.split("\n")
      const used = new Set<number>()
      const found = new Map<string, string>()
      const missing: string[] = []
      for (const shown of expected) {
        const { regex, pairs } = compile(shown)
        const i = lines.findIndex((l, n) => !used.has(n) && regex.test(l))
        if (i < 0) {
          missing.push(shown)
          continue
        }
        used.add(i)
        const groups = regex.exec(lines[i] as string)?.slice(1) ?? []
        for (const [g, from] of pairs.entries()) found.set(from, groups[g] as string)
      }
      if (missing.length === 0) for (const [from, to] of found) learned.set(from, to)
      return missing
    },
    paste(command) {
      let out = command
      for (const [from, to] of learned) out = out.replaceAll(from, to)
      return out
    },
  }
}
