// How risky a command line is. Every door that runs a command (the command API, the agent relay, CLI
// sessions) asks `assessCommand` first and needs `commands:run` for low and medium risk and
// `commands:run-high` for high (command-risk.ts).
//
// The rule: a line is low or medium only if every part of it is understood and known to be so. The
// line must parse in the conservative shell subset of shell-words.ts (no expansions, substitutions,
// groups, here-documents, …); each simple command must be, past allowed assignments and wrappers, a
// program the registry lists, named plainly or by a path in a system bin directory, used only with
// the flags, subcommands and operands its entry names; each write, by redirection or by a program,
// must go to /dev/null or a plain name in /tmp. Anything else is high, whatever it would do:
// what is not understood is not guessed at. The line is as risky as its riskiest part.

import type { RegistryEntry, RiskLevel } from "./command-entry.ts"
import { type ReadArguments, readArguments } from "./command-flags.ts"
import { REGISTRY } from "./command-registry.ts"
import { parseShellLine, type Redirect, type SimpleCommand, type Word } from "./shell-words.ts"

export interface CommandPart {
  program: string
  args: string[]
  risk: RiskLevel
  reason: string
}

export interface CommandAssessment {
  risk: RiskLevel
  /** One entry per simple command in the line, in order. */
  parts: CommandPart[]
  /** Why the line has its risk, for error messages and approvals. */
  reasons: string[]
}

const ORDER: Record<RiskLevel, number> = { low: 0, medium: 1, high: 2 }
const riskier = (a: RiskLevel, b: RiskLevel) => ORDER[b] > ORDER[a]

/**
 * Variables a line may set, before a program or alone, and the values they may take: locale, time
 * zone and output width. Every other name may steer what runs or what it loads (PATH, LD_*, IFS,
 * BASH_ENV, ENV, PROMPT_COMMAND, PAGER, LESSOPEN, NIX_*, …), so setting it is high.
 */
const SAFE_VARIABLES = /^(LANG|LANGUAGE|LC_[A-Z]+|TZ|NO_COLOR|COLUMNS|LINES)$/
const SAFE_VALUE = /^(?!\/)(?!.*\.\.)[A-Za-z0-9_.@:+,/-]*$/
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)\+?=/

/** Directories whose programs are the system's own: a program named by any other path is high. */
const SYSTEM_BIN =
  /^\/(run\/current-system\/sw\/s?bin|run\/wrappers\/bin|nix\/var\/nix\/profiles\/(system\/sw|default)\/s?bin|usr\/s?bin|s?bin|usr\/local\/s?bin)\/[A-Za-z0-9_.+-]+$/
/** A program name as typed, nothing computed: letters, digits and `_ . + - /` only. */
const PLAIN = /^[A-Za-z0-9_.+/-]+$/

/** A wrapper as the argument reader sees it: only its flags matter. */
const wrapper = (short?: string, long?: string): RegistryEntry => ({
  description: "",
  category: "wrapper",
  output_format: "none",
  risk_level: "low",
  short,
  long,
})
/** Wrappers the registry looks past, with the flags known to be safe for each. */
const WRAPPERS: Record<string, RegistryEntry> = {
  sudo: wrapper("nHku:g:", "--non-interactive --reset-timestamp --user: --group:"),
  env: wrapper("0iu:", "--ignore-environment --null --unset:"),
  nohup: wrapper(),
  time: wrapper("p"),
  timeout: wrapper("vs:k:", "--signal: --kill-after: --preserve-status --foreground --verbose"),
  nice: wrapper("n:", "--adjustment:"),
  ionice: wrapper("tc:n:", "--class: --classdata:"),
}
const DURATION = /^\d+(\.\d+)?[smhd]?$/

const high = (program: string, args: string[], reason: string): CommandPart => ({ program, args, risk: "high", reason })

/** The risk of a whole command line: its riskiest part, or high when it is not understood. */
export function assessCommand(line: string): CommandAssessment {
  const parsed = parseShellLine(line)
  if (!parsed.ok) {
    const reason = `the line holds ${parsed.reason}, outside the shell the registry understands`
    return { risk: "high", parts: [high("", [], reason)], reasons: [reason] }
  }
  const parts = parsed.commands.map(assessSimple)
  let risk: RiskLevel = "low"
  for (const p of parts) if (riskier(risk, p.risk)) risk = p.risk
  return { risk, parts, reasons: parts.filter((p) => p.risk === risk).map((p) => p.reason) }
}

/** The program's registry name, or why the word cannot be one. */
function programName(word: Word): { name: string } | { refused: string } {
  if (word.raw === "[" && !word.quoted) return { name: "[" }
  if (word.quoted || word.glob || !PLAIN.test(word.raw))
    return { refused: `the program name ${word.raw} is quoted, escaped or globbed; the registry cannot tell what runs` }
  if (!word.text.includes("/")) return { name: word.text }
  if (!SYSTEM_BIN.test(word.text))
    return { refused: `${word.text} is not a program in a system bin directory; the registry cannot tell what it is` }
  return { name: word.text.slice(word.text.lastIndexOf("/") + 1) }
}

function assignmentProblem(word: Word): string | null {
  const name = ASSIGNMENT.exec(word.raw)?.[1] as string
  if (!SAFE_VARIABLES.test(name))
    return `sets ${name}, which is not a variable known to be safe (it may change what runs)`
  const value = word.text.slice(word.text.indexOf("=") + 1)
  if (!SAFE_VALUE.test(value)) return `sets ${name} to a value outside letters, digits and . _ @ : + , - /`
  return null
}

function assessSimple(cmd: SimpleCommand): CommandPart {
  let rest = cmd.words
  const wrapped: string[] = []
  for (;;) {
    while (rest[0] && ASSIGNMENT.test(rest[0].raw)) {
      const problem = assignmentProblem(rest[0])
      if (problem) return high(wrapped[0] ?? "", [], problem)
      rest = rest.slice(1)
    }
    const word = rest[0]
    if (!word) break
    const named = programName(word)
    if ("refused" in named) return high(word.raw, [], named.refused)
    const wrapper = Object.hasOwn(WRAPPERS, named.name) ? WRAPPERS[named.name] : undefined
    if (!wrapper) break
    // The wrapper's own flags end at its first operand, which is the program it runs.
    let i = 1
    for (; i < rest.length && (rest[i] as Word).text.startsWith("-"); i++) {
      const read = readArguments(named.name, wrapper, rest.slice(i, i + 2))
      if (read.unknown) return high(named.name, [], read.unknown)
      if (read.flagWords.length === 2) i++
    }
    if (named.name === "timeout") {
      if (!rest[i] || !DURATION.test((rest[i] as Word).text))
        return high("timeout", [], "timeout without a plain duration")
      i++
    }
    wrapped.push(named.name)
    rest = rest.slice(i)
  }
  const word = rest[0]
  const words = rest.slice(1)
  const args = words.map((w) => w.text)
  let part: CommandPart
  if (!word) part = { program: wrapped[0] ?? "", args, risk: "low", reason: "no program" }
  else {
    const named = programName(word)
    if ("refused" in named) return high(word.raw, args, named.refused)
    const entry = Object.hasOwn(REGISTRY, named.name) ? REGISTRY[named.name] : undefined
    if (!entry) return high(named.name, args, `${named.name} is not in the command registry`)
    part = assessProgram(named.name, entry, words)
  }
  if (wrapped.includes("sudo") && part.risk === "low")
    part = { ...part, risk: "medium", reason: `sudo ${part.program}: runs as another user` }
  for (const r of cmd.redirects) {
    const w = redirectRisk(r)
    if (w && riskier(part.risk, w.risk)) part = { ...part, risk: w.risk, reason: w.reason }
  }
  return part
}

/** A listed program with its arguments: flags, operands, subcommand and risk-changing arguments. */
function assessProgram(program: string, entry: RegistryEntry, words: Word[]): CommandPart {
  const args = words.map((w) => w.text)
  if (entry.risk_level === "high" && !entry.subcommands)
    return high(program, args, `${program}: ${entry.description.toLowerCase()}`)
  const read = readArguments(program, entry, words)
  if (read.unknown) return high(program, args, read.unknown)
  const globbed = read.flagWords.find((w) => w.glob)
  if (globbed) return high(program, args, `${program} ${globbed.raw}: a glob where a flag or its value goes`)
  // A glob expands to file names, and a file named `-rf` or `--to-command=sh` would become a flag
  // (harmless only where every flag is: `ls *.log`).
  const loose = entry.short !== "*" && read.operands.find((w) => w.glob && !/^\.?\//.test(w.raw))
  if (loose)
    return high(program, args, `${program} ${loose.raw}: a glob that could expand to a flag (start it with / or ./)`)
  // Where the operands are counted or matched, a glob could bring more, or others, than were typed.
  const bounded = entry.maxOperands !== undefined || entry.operands !== undefined
  const counted = bounded && read.operands.find((w) => w.glob)
  if (counted) return high(program, args, `${program} ${counted.raw}: a glob where the operands are bounded`)
  if (entry.maxOperands !== undefined && read.operands.length > entry.maxOperands)
    return high(
      program,
      args,
      `${program} takes at most ${entry.maxOperands} operand(s) here; more would change things`,
    )
  const odd = entry.operands && read.operands.find((w) => !entry.operands?.test(w.text))
  if (odd) return high(program, args, `${program} ${odd.raw}: not an operand known to be safe for ${program}`)

  const needed = entry.needs
  if (needed && !read.flags.some((f) => needed.includes(f.replace(/=.*$/s, ""))))
    return high(program, args, `${program} without ${needed.join(" or ")}: ${entry.description.toLowerCase()}`)
  const profile = read.values.find((v) => entry.profiles?.includes(v.flag) && !PROFILE.test(v.value))
  if (profile) return high(program, args, `${program} ${profile.flag} ${profile.value}: a profile outside ${PROFILES}`)
  const outside = unknownWrite(entry, read)
  if (outside !== null) return high(program, args, `${program} writes to ${outside}: ${PLACES}`)

  let risk = entry.risk_level
  let reason = `${program}: ${entry.description.toLowerCase()}`
  const judged = judgeSubcommand(program, entry, read.operands)
  // Like nix-build, `nix build` leaves a `result` link wherever the expression points unless told not to.
  if (program === "nix" && read.operands[0]?.text === "build" && !read.flags.includes("--no-link"))
    return high(program, args, "nix build without --no-link leaves a link a later write could follow")
  if (judged) {
    risk = judged.risk
    reason = judged.reason
  }
  // An argument may lower the risk (`nix-store -q` only reads) unless another raises it (`--delete`).
  const said = [...read.flags, ...read.operands.map((o) => o.text)]
  const flagged = (entry.riskyFlags ?? []).flatMap(({ pattern, risk: level }) => {
    const hit = said.find((a) => pattern.test(a))
    return hit === undefined ? [] : [{ hit, level }]
  })
  const raised = flagged.filter((f) => riskier(risk, f.level)).sort((a, b) => ORDER[b.level] - ORDER[a.level])[0]
  const chosen = raised ?? flagged.find((f) => riskier(f.level, risk))
  if (chosen) return { program, args, risk: chosen.level, reason: `${program} ${chosen.hit}` }
  return { program, args, risk, reason }
}

/** systemd units that power off, reboot or isolate the machine whatever verb starts them. */
const POWER_UNITS =
  /^(systemd-)?(reboot|poweroff|halt|kexec|rescue|emergency|shutdown|sleep|suspend|hibernate|hybrid-sleep|suspend-then-hibernate|soft-reboot|ctrl-alt-del|default|exit|final|umount|initrd-switch-root)(\.target|\.service)?$/
const PROFILES = "/nix/var/nix/profiles"
const PROFILE = /^\/nix\/var\/nix\/profiles(\/[A-Za-z0-9_][A-Za-z0-9._-]*)+$/
/** `ip OBJECT [VERB]`: only these verbs (or none) only read. */
const IP_READ = new Set(["show", "list", "ls", "lst", "get", "help"])

/** The subcommand's own risk where the program has verbs: ip, and the registry's allow-lists. */
function judgeSubcommand(
  program: string,
  entry: RegistryEntry,
  operands: Word[],
): { risk: RiskLevel; reason: string } | null {
  if (program === "ip") {
    const [object, verb] = operands
    if (!object) return null
    if (verb === undefined || IP_READ.has(verb.text)) return null
    return { risk: "high", reason: `ip ${object.text} ${verb.text} changes the network or runs a command` }
  }
  if (!entry.subcommands) return null
  const sub = operands[0]
  if (!sub) return { risk: entry.bare ?? entry.risk_level, reason: `${program} with no verb` }
  const known = Object.hasOwn(entry.subcommands, sub.text) ? entry.subcommands[sub.text] : undefined
  if (!known) return { risk: "high", reason: `${program} ${sub.text}: not a verb known to be safe` }
  if (program === "systemctl" && riskier(known, "high")) {
    // systemctl matches a quoted glob against loaded units itself: `'reb*'` is reboot.target.
    const unit = operands.slice(1).find((u) => POWER_UNITS.test(u.text) || /[*?[]/.test(u.text))
    if (unit) return { risk: "high", reason: `systemctl ${sub.text} ${unit.text} may reach a power or rescue unit` }
  }
  return { risk: known, reason: `${program} ${sub.text}` }
}

const DISCARDED = new Set(["/dev/null", "/dev/stdout", "/dev/stderr", "-"])
/** One path component the shell and the kernel take as written: no `..`, no dotfile, nothing to expand. */
const COMPONENT = /^[A-Za-z0-9_][A-Za-z0-9._@+:,=-]*$/

/**
 * Whether a command may write PATH at low or medium risk: a plain name directly in /tmp, so no
 * directory on the way can be a link elsewhere (the programs that make links are high, and the kernel
 * follows no other user's link in a sticky directory). Not the working directory: `cd` moves it
 * anywhere, and a session keeps it from one command to the next. `notes.txt`, `/tmp/../etc`, `//etc`,
 * `/tmp/a/b`, `~/.bashrc`, `/proc/self/root/…` and every other path are not known places.
 */
export function knownPlace(path: string): boolean {
  if (DISCARDED.has(path)) return true
  return path.startsWith("/tmp/") && COMPONENT.test(path.slice(5))
}

/** How risky a redirection is: null for reads and discards, medium for a write to a known place. */
function redirectRisk(r: Redirect): { risk: RiskLevel; reason: string } | null {
  const target = r.target.text
  if (r.op === "<&" || (r.op === ">&" && /^(\d+|-)$/.test(target))) {
    if (/^(\d+|-)$/.test(target)) return null
    return { risk: "high", reason: `a descriptor copy from ${r.target.raw}, which is not a descriptor` }
  }
  if (r.target.glob) return { risk: "high", reason: `a redirection to a glob ${r.target.raw}` }
  if (r.op === "<" || (DISCARDED.has(target) && target !== "-")) return null
  if (knownPlace(target) && target !== "-") return { risk: "medium", reason: `writes to ${target}` }
  return { risk: "high", reason: `writes to ${r.target.raw}: ${PLACES}` }
}

const PLACES = "only /dev/null and a plain name directly in /tmp are known places to write"

/** The first path a file-changing program would write outside the known places, if any. */
function unknownWrite(entry: RegistryEntry, read: ReadArguments): string | null {
  const w = entry.writes
  if (!w) return null
  const flagged = read.values.filter((v) => w.flags?.includes(v.flag)).map((v) => v.value)
  const operands = read.operands.map((o) => o.text)
  const byReference = read.flags.some((f) => f.startsWith("--reference"))
  const targets =
    w.operands === "all" || (w.operands === "rest" && byReference)
      ? [...flagged, ...operands]
      : w.operands === "rest"
        ? [...flagged, ...operands.slice(1)]
        : w.operands === "last" && flagged.length === 0
          ? operands.slice(-1)
          : flagged
  return targets.find((t) => !knownPlace(t)) ?? null
}
