// Flags a command does not define are refused, in the CLI and the agent alike. citty parses with
// `strict: false`, so `chimera deploy --dryrun` (for `--dry-run`) would otherwise run a real deploy and
// `chimera-agent --hartbeat 3` would keep the default interval, both without a word.
//
// A flag is known by the names citty matches it by: the arg's key, its kebab-case and camelCase
// spellings, each alias, and `--no-<name>` for a boolean. A flag that takes a value (string or enum)
// takes the next word unless it carries `=value`; everything after `--` belongs to the command run.
import type { ArgsDef } from "citty"

type Kind = "boolean" | "value"

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())

/** Every name (without dashes) a command's flags answer to, with whether the flag takes a value. */
export function flagNames(args: ArgsDef): Map<string, Kind> {
  const names = new Map<string, Kind>()
  for (const [key, def] of Object.entries(args)) {
    if (def.type === "positional") continue
    const kind: Kind = def.type === "boolean" ? "boolean" : "value"
    const aliases = "alias" in def && def.alias !== undefined ? [def.alias].flat() : []
    for (const name of [key, kebab(key), camel(key), ...aliases]) names.set(name, kind)
  }
  return names
}

/** The index of the first word that is not a flag or a flag's value (citty's subcommand), or -1. */
export function firstWord(rawArgs: readonly string[], args: ArgsDef): number {
  const names = flagNames(args)
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i] ?? ""
    if (arg === "--") return -1
    if (!arg.startsWith("-")) return i
    if (!arg.includes("=") && names.get(arg.replace(/^-{1,2}/, "")) === "value") i++
  }
  return -1
}

/**
 * The words among `rawArgs` past the positionals `args` declares: citty drops them silently, so
 * `chimera tokens revoke A B` would revoke A alone and exit 0. A positional named `command` takes
 * every word that follows (`chimera exec -- systemctl restart nginx`). Words after `--` are words too:
 * `chimera tokens revoke A -- B` would revoke A alone.
 */
export function extraWords(args: ArgsDef, rawArgs: readonly string[]): string[] {
  const positionals = Object.entries(args).filter(([, def]) => def.type === "positional")
  if (positionals.some(([name]) => name === "command")) return []
  const names = flagNames(args)
  const words: string[] = []
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i] ?? ""
    // citty hands the words after `--` to the positionals too, and drops those past the last.
    if (arg === "--") {
      words.push(...rawArgs.slice(i + 1))
      break
    }
    // A negative number no flag takes as its value: citty reads `-5` as a flag `5` and drops it.
    if (arg === "-" || !arg.startsWith("-") || /^-\d/.test(arg)) words.push(arg)
    else if (!arg.includes("=") && names.get(arg.replace(/^-{1,2}/, "")) === "value") i++
  }
  return words.slice(positionals.length)
}

/** The flags among `rawArgs` (up to `--`) that `args` does not define, as written (`--dryrun`, `-x`). */
export function unknownFlags(args: ArgsDef, rawArgs: readonly string[]): string[] {
  const names = flagNames(args)
  const unknown: string[] = []
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i] ?? ""
    if (arg === "--") break
    // A word, stdin's `-`, or a negative number given as a value.
    if (!arg.startsWith("-") || arg === "-" || /^-\d/.test(arg)) continue
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=")
      const name = arg.slice(2, eq === -1 ? undefined : eq)
      const kind = names.get(name)
      if (kind === undefined) {
        if (!(name.startsWith("no-") && names.get(name.slice(3)) === "boolean")) unknown.push(`--${name}`)
      } else if (kind === "value" && eq === -1) i++
      continue
    }
    // Short flags, possibly grouped (`-vx`); one that takes a value ends the group, or takes the next word.
    for (let j = 1; j < arg.length; j++) {
      const kind = names.get(arg[j] ?? "")
      if (kind === undefined) {
        unknown.push(`-${arg[j]}`)
        break
      }
      if (kind === "value") {
        if (j === arg.length - 1) i++
        break
      }
    }
  }
  return unknown
}

/**
 * Every value given for `--name` (as `--name V` or `--name=V`), in order, up to `--`. citty keeps only
 * the last of a repeated flag, so a flag documented as repeatable reads its values here.
 */
export function repeatedValues(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = []
  for (let i = 0; i < rawArgs.length && rawArgs[i] !== "--"; i++) {
    const arg = rawArgs[i] ?? ""
    if (arg === `--${name}` && i + 1 < rawArgs.length) values.push(rawArgs[++i] ?? "")
    else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3))
  }
  return values
}

/** The long flag of `args` nearest to `flag` (two edits at most), for "did you mean". */
export function nearestFlag(args: ArgsDef, flag: string): string | null {
  const names = [...flagNames(args)].map(([name]) => name).filter((name) => name.length >= 2)
  const best = nearestName(names.map(kebab), flag.replace(/^-{1,2}/, ""))
  return best === null ? null : `--${best}`
}

/** The name among `names` closest to `given` (a typo's distance, at most 2), or null. */
export function nearestName(names: string[], given: string): string | null {
  let best: string | null = null
  let bestDistance = 3
  for (const name of names) {
    const d = distance(given, name)
    if (d < bestDistance) {
      best = name
      bestDistance = d
    }
  }
  return best
}

/** One sentence naming the unknown flags of a command, with a suggestion where one is close. */
export function unknownFlagsMessage(command: string, args: ArgsDef, unknown: string[]): string {
  const named = unknown.map((flag) => {
    const near = flag.startsWith("--") ? nearestFlag(args, flag) : null
    return near ? `${flag} (did you mean ${near}?)` : flag
  })
  const what = unknown.length === 1 ? "unknown option" : "unknown options"
  return `${what} ${named.join(", ")} for ${command}; see ${command} --help`
}

/** Levenshtein distance, for short flag names. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + cost)
    }
    row = next
  }
  return row[b.length] ?? 0
}
