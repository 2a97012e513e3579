// Reads a program's arguments against the flags its registry entry knows to be safe: which words are
// flags, which are their values and which are operands, and the first flag that is not known. It reads
// the way GNU getopt does (flags anywhere before `--`, clusters like `-la`, values attached or in the
// next word, `--name=value`), so a flag cannot hide as an operand; long flags must be spelled in full,
// since getopt's abbreviations (`--del`) would otherwise reach flags nobody listed.
import type { RegistryEntry } from "./command-entry.ts"
import type { Word } from "./shell-words.ts"

interface FlagSpec {
  any: boolean
  /** Short letter → takes a value. */
  short: Map<string, boolean>
  /** Whole flag (`--lines`, `-name`) → "none", "value" (next word or `=`) or "optional" (`=` only). */
  long: Map<string, "none" | "value" | "optional">
}

export interface ReadArguments {
  flags: string[]
  operands: Word[]
  /** Every word that was read as a flag or a flag's value, for the glob check. */
  flagWords: Word[]
  /** Each flag's value, under the flag's name (`-o`, `--output`). */
  values: { flag: string; value: string }[]
  /** Why the arguments are not understood, or null. */
  unknown: string | null
}

const specs = new WeakMap<RegistryEntry, FlagSpec>()

function specOf(entry: RegistryEntry): FlagSpec {
  const cached = specs.get(entry)
  if (cached) return cached
  const short = new Map<string, boolean>()
  const letters = entry.short ?? ""
  for (let i = 0; i < letters.length; i++) {
    const c = letters[i] as string
    if (c === ":" || c === "*") continue
    short.set(c, letters[i + 1] === ":")
  }
  const long = new Map<string, "none" | "value" | "optional">()
  for (const token of (entry.long ?? "").split(" ").filter(Boolean)) {
    if (token.endsWith(":")) long.set(token.slice(0, -1), "value")
    else if (token.endsWith("?")) long.set(token.slice(0, -1), "optional")
    else long.set(token, "none")
  }
  const spec = { any: letters === "*", short, long }
  specs.set(entry, spec)
  return spec
}

/** A negative number (`-1`, `tail -5`) is harmless wherever it is read, flag or operand. */
const NUMBER = /^-\d+$/
const SIGNAL = /^-(SIG)?[A-Z][A-Z0-9+-]*$/

/** Sorts `words` (the arguments after the program) into flags, values and operands. */
export function readArguments(program: string, entry: RegistryEntry, words: Word[]): ReadArguments {
  const spec = specOf(entry)
  const flags: string[] = []
  const operands: Word[] = []
  const flagWords: Word[] = []
  const values: { flag: string; value: string }[] = []
  const unknownFlag = (flag: string) => ({
    flags,
    operands,
    flagWords,
    values,
    unknown: `${program} ${flag}: not a flag known to be safe for ${program}`,
  })
  let ended = false
  // Old-style `tar xzf FILE`: a first word without a dash is a cluster of flags.
  const oldStyleTar = program === "tar" && words[0] !== undefined && !words[0].text.startsWith("-")
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as Word
    const text = i === 0 && oldStyleTar ? `-${w.text}` : w.text
    // A signal by number (`kill -9 PID`) is a flag as the first word only: later, `-1` is a process id.
    const signalNumber = entry.signals && i === 0 && NUMBER.test(text)
    if (ended || !text.startsWith("-") || text === "-" || (NUMBER.test(text) && !signalNumber)) {
      operands.push(w)
      continue
    }
    if (text === "--") {
      ended = true
      continue
    }
    flags.push(text)
    flagWords.push(w)
    if (spec.any) continue
    if (signalNumber || (entry.signals && SIGNAL.test(text))) continue
    const eq = text.indexOf("=")
    const name = eq < 0 ? text : text.slice(0, eq)
    const kind = spec.long.get(name)
    if (kind !== undefined) {
      if (kind === "none" && eq >= 0) return unknownFlag(text)
      if (kind !== "none" && eq >= 0) values.push({ flag: name, value: text.slice(eq + 1) })
      if (kind === "value" && eq < 0) {
        const value = words[++i]
        if (value === undefined) return unknownFlag(`${text} (without its value)`)
        flagWords.push(value)
        values.push({ flag: name, value: value.text })
      }
      continue
    }
    if (text.startsWith("--")) return unknownFlag(name)
    // A cluster of short flags; a letter that takes a value takes the rest of the word, or the next one.
    for (let j = 1; j < text.length; j++) {
      const letter = text[j] as string
      const valued = spec.short.get(letter)
      if (valued === undefined) return unknownFlag(`-${letter}`)
      if (!valued) continue
      if (j === text.length - 1) {
        const value = words[++i]
        if (value === undefined) return unknownFlag(`-${letter} (without its value)`)
        flagWords.push(value)
        values.push({ flag: `-${letter}`, value: value.text })
      } else values.push({ flag: `-${letter}`, value: text.slice(j + 1) })
      break
    }
  }
  return { flags, operands, flagWords, values, unknown: null }
}
