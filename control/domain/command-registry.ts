// The command registry (seed 001): what the commands an operator or an AI agent types are, and how
// risky each is. Every door that runs a command (the command API, CLI sessions, MCP, chat, RPC) asks
// `assessCommand` first and needs `commands:run` for low and medium risk, `commands:run-high` for high
// (DESIGN.md, "one safe door"). The assessment reads the whole line: each simple command between
// `;`, `&&`, `||`, `|`, `&` and newlines, past `sudo`/`env`/`nohup`-style wrappers; the line is as
// risky as its riskiest part.
//
// It fails closed. A program it does not know is high. So is whatever it cannot read with certainty:
// a program name that is computed, quoted, escaped or globbed (`$X`, `r\m`, `/???/bin/r?`, `rm{,}`),
// a shell keyword or function definition in command position, command or process substitution,
// here-documents, a nested shell or `eval`, programs that run other programs from their arguments
// (awk's system(), sed's `e`, nix-shell --run, tmux), assignments to variables that change what runs
// (PATH, LD_*, BASH_ENV, *OPEN, *PAGER, …), and redirections that write outside the working directory
// and /tmp. Subcommands are judged against an allowlist where one exists (systemctl, ip, nix).
import { z } from "zod"

export const RiskLevel = z.enum(["low", "medium", "high"])
export type RiskLevel = z.infer<typeof RiskLevel>

export interface CommandOption {
  flag: string
  description: string
}

export interface RegistryEntry {
  description: string
  category: string
  output_format: "text" | "tabular" | "json" | "none"
  risk_level: RiskLevel
  common_options?: CommandOption[]
  /** Subcommands (first non-flag argument) whose risk differs from the entry's own. */
  subcommands?: Record<string, RiskLevel>
  /** Flags that raise the risk (e.g. `rm -r`), matched against each argument. */
  riskyFlags?: { pattern: RegExp; risk: RiskLevel }[]
}

const e = (
  category: string,
  description: string,
  risk_level: RiskLevel,
  more: Partial<RegistryEntry> = {},
): RegistryEntry => ({ category, description, risk_level, output_format: "text", ...more })

const READ = (category: string, description: string, more: Partial<RegistryEntry> = {}) =>
  e(category, description, "low", more)

export const REGISTRY: Record<string, RegistryEntry> = {
  ls: READ("filesystem.content", "List directory contents", {
    output_format: "tabular",
    common_options: [
      { flag: "-l", description: "Long format" },
      { flag: "-a", description: "Show hidden files" },
    ],
  }),
  pwd: READ("filesystem.navigation", "Print the working directory"),
  cd: READ("filesystem.navigation", "Change the working directory (persists in a session)"),
  cat: READ("filesystem.content", "Print files"),
  head: READ("filesystem.content", "Print the first lines of files"),
  tail: READ("filesystem.content", "Print the last lines of files"),
  less: READ("filesystem.content", "Page through files"),
  grep: READ("text.search", "Search text for a pattern"),
  find: READ("filesystem.search", "Find files", {
    riskyFlags: [{ pattern: /^-(delete|exec|execdir|ok)$/, risk: "high" }],
  }),
  wc: READ("text.analysis", "Count lines, words and bytes"),
  sort: READ("text.transform", "Sort lines"),
  uniq: READ("text.transform", "Collapse repeated lines"),
  cut: READ("text.transform", "Select fields from lines"),
  // Both run programs from their scripts (awk's system(), GNU sed's `e`): what runs is not on the line.
  awk: e("text.transform", "Pattern scanning and processing (can run programs)", "high"),
  sed: e("text.transform", "Stream editor (can run programs)", "high"),
  sleep: READ("shell.builtin", "Wait a number of seconds"),
  exit: READ("shell.builtin", "End the shell with a status"),
  ":": READ("shell.builtin", "Do nothing, successfully"),
  "[": READ("shell.builtin", "Evaluate a condition"),
  set: READ("shell.builtin", "Set shell options"),
  nproc: READ("system.info", "Number of processors"),
  lscpu: READ("system.info", "Processor details", { output_format: "tabular" }),
  lsblk: READ("system.storage", "Block devices", { output_format: "tabular" }),
  lsof: READ("system.process", "Open files"),
  dmesg: READ("system.logs", "Kernel messages", {
    riskyFlags: [{ pattern: /^-(C|c|D|E|n)$|^--(clear|read-clear)/, risk: "medium" }],
  }),
  loginctl: READ("system.info", "Login sessions"),
  hostnamectl: READ("system.info", "Host name and OS", {
    subcommands: { status: "low", hostname: "medium", "set-hostname": "high" },
  }),
  who: READ("system.info", "Who is logged in"),
  w: READ("system.info", "Who is logged in and what they run"),
  last: READ("system.info", "Recent logins"),
  vmstat: READ("system.memory", "Virtual memory statistics", { output_format: "tabular" }),
  printenv: READ("system.info", "Print the environment"),
  getent: READ("system.users", "Look up users, groups and hosts"),
  groups: READ("system.users", "Groups of a user"),
  dig: READ("networking", "DNS lookup"),
  host: READ("networking", "DNS lookup"),
  file: READ("filesystem.content", "Guess a file's type"),
  tree: READ("filesystem.content", "List a directory tree"),
  diff: READ("text.analysis", "Compare files"),
  md5sum: READ("text.analysis", "MD5 checksums"),
  sha256sum: READ("text.analysis", "SHA-256 checksums"),
  basename: READ("text.transform", "Strip a path to its last part"),
  dirname: READ("text.transform", "Strip a path's last part"),
  tr: READ("text.transform", "Translate characters"),
  jq: READ("text.transform", "Query JSON", { output_format: "json" }),
  base64: READ("text.transform", "Encode or decode base64"),
  seq: READ("text.transform", "Print a sequence of numbers"),
  zcat: READ("filesystem.content", "Print compressed files"),
  "nixos-option": READ("nix.system", "Show a NixOS option's value"),
  "nix-instantiate": e("nix.build", "Evaluate a Nix expression", "medium"),
  "nix-copy-closure": e("nix.store", "Copy a closure to or from another machine", "medium"),
  tar: e("filesystem.change", "Pack or unpack archives", "medium"),
  gzip: e("filesystem.change", "Compress files", "medium"),
  gunzip: e("filesystem.change", "Decompress files", "medium"),
  sysctl: READ("system.kernel", "Read kernel parameters", {
    riskyFlags: [{ pattern: /^(-w|--write|-p|--load|--system)$|=/, risk: "high" }],
  }),
  modprobe: e("system.kernel", "Load or unload kernel modules", "high"),
  echo: READ("shell.builtin", "Print text"),
  printf: READ("shell.builtin", "Print formatted text"),
  true: READ("shell.builtin", "Succeed"),
  false: READ("shell.builtin", "Fail"),
  test: READ("shell.builtin", "Evaluate a condition"),
  export: e("shell.builtin", "Set an environment variable (persists in a session)", "low"),
  unset: READ("shell.builtin", "Unset a variable"),
  env: READ("system.info", "Print the environment or run a command in a changed one"),
  date: READ("system.info", "Print the date"),
  uptime: READ("system.info", "How long the system has run"),
  uname: READ("system.info", "System name and kernel"),
  hostname: READ("system.info", "Print the host name"),
  whoami: READ("system.info", "Print the effective user"),
  id: READ("system.info", "Print user and group ids"),
  df: READ("system.storage", "File system usage", { output_format: "tabular" }),
  du: READ("system.storage", "Disk usage of files"),
  free: READ("system.memory", "Memory usage", { output_format: "tabular" }),
  ps: READ("system.process", "List processes", { output_format: "tabular" }),
  top: READ("system.process", "Process monitor"),
  stat: READ("filesystem.content", "File status"),
  readlink: READ("filesystem.content", "Resolve a symbolic link"),
  realpath: READ("filesystem.content", "Resolve a path"),
  which: READ("shell.lookup", "Locate a program"),
  journalctl: READ("system.logs", "Query the systemd journal", {
    riskyFlags: [{ pattern: /^--(vacuum-\w+|rotate|flush)/, risk: "medium" }],
  }),
  ip: READ("networking", "Show addresses and routes (changing them is high)"),
  ss: READ("networking", "Socket statistics"),
  ping: READ("networking", "Send ICMP echo requests"),
  curl: e("networking", "Transfer data from or to a URL", "medium"),
  wget: e("networking", "Download files", "medium"),
  mkdir: e("filesystem.change", "Make directories", "medium"),
  touch: e("filesystem.change", "Create files or change their times", "medium"),
  cp: e("filesystem.change", "Copy files", "medium"),
  mv: e("filesystem.change", "Move files", "medium"),
  ln: e("filesystem.change", "Make links", "medium"),
  tee: e("filesystem.change", "Write input to files", "medium"),
  chmod: e("filesystem.permissions", "Change file modes", "medium"),
  chown: e("filesystem.permissions", "Change file owners", "medium"),
  rm: e("filesystem.change", "Remove files", "high"),
  rmdir: e("filesystem.change", "Remove empty directories", "medium"),
  kill: e("system.process", "Signal a process", "medium"),
  pkill: e("system.process", "Signal processes by name", "medium"),
  killall: e("system.process", "Signal processes by name", "high"),
  systemctl: e("system.services", "Control systemd units (verbs not listed are high)", "high", {
    subcommands: {
      status: "low",
      show: "low",
      cat: "low",
      "list-units": "low",
      "list-unit-files": "low",
      "list-timers": "low",
      "is-active": "low",
      "is-enabled": "low",
      "is-failed": "low",
      start: "medium",
      restart: "medium",
      reload: "medium",
      "try-restart": "medium",
      stop: "high",
      disable: "high",
      mask: "high",
      kill: "high",
      isolate: "high",
      reboot: "high",
      poweroff: "high",
      halt: "high",
      "daemon-reload": "medium",
    },
  }),
  "nixos-rebuild": e("nix.system", "Build and activate a NixOS configuration", "medium", {
    subcommands: { build: "low", "dry-build": "low", "dry-activate": "low", "list-generations": "low" },
  }),
  "nixos-version": READ("nix.system", "Print the NixOS version"),
  nix: e("nix", "The Nix command", "high", {
    subcommands: {
      eval: "low",
      "path-info": "low",
      "why-depends": "low",
      search: "low",
      log: "low",
      "show-derivation": "low",
      hash: "low",
      build: "medium",
    },
  }),
  "nix-store": e("nix.store", "Manipulate or query the Nix store", "medium", {
    riskyFlags: [
      { pattern: /^(-q|--query|--verify|--print-env)$/, risk: "low" },
      { pattern: /^(--delete|--gc)$/, risk: "high" },
    ],
  }),
  "nix-env": e("nix.profile", "Manipulate Nix profiles", "medium", {
    riskyFlags: [
      { pattern: /^(-q|--query|--list-generations)$/, risk: "low" },
      { pattern: /^--delete-generations$/, risk: "high" },
    ],
  }),
  "nix-build": e("nix.build", "Build a Nix expression", "medium"),
  "nix-shell": e("nix.build", "Start a shell with a derivation's environment (runs --run text)", "high"),
  "nix-collect-garbage": e("nix.store", "Delete unreachable store paths", "high"),
  "nix-channel": e("nix.channels", "Manage channels", "medium"),
  reboot: e("system.power", "Reboot the machine", "high"),
  shutdown: e("system.power", "Shut the machine down", "high"),
  poweroff: e("system.power", "Power the machine off", "high"),
  halt: e("system.power", "Halt the machine", "high"),
  dd: e("system.storage", "Copy and convert raw data", "high"),
  mkfs: e("system.storage", "Make a file system", "high"),
  fdisk: e("system.storage", "Partition a disk", "high"),
  parted: e("system.storage", "Partition a disk", "high"),
  wipefs: e("system.storage", "Wipe file system signatures", "high"),
  mount: e("system.storage", "Mount a file system", "high"),
  umount: e("system.storage", "Unmount a file system", "high"),
  useradd: e("system.users", "Add a user", "high"),
  userdel: e("system.users", "Delete a user", "high"),
  usermod: e("system.users", "Change a user", "high"),
  passwd: e("system.users", "Change a password", "high"),
  iptables: e("networking.firewall", "Change the firewall", "high"),
  nft: e("networking.firewall", "Change the firewall", "high"),
  crontab: e("system.scheduling", "Change cron tables", "high"),
  tmux: e("shell.sessions", "Terminal multiplexer (runs commands it is given)", "high"),
}

/** Programs that run what follows them as another command: the registry looks past them. */
const WRAPPERS: Record<string, { flagsWithValue: Set<string> }> = {
  sudo: { flagsWithValue: new Set(["-u", "-g", "-p", "-C", "-D", "-h", "-r", "-t", "-U", "-R", "-T"]) },
  env: { flagsWithValue: new Set(["-u", "-C", "--unset", "--chdir"]) },
  nohup: { flagsWithValue: new Set() },
  time: { flagsWithValue: new Set(["-f", "-o"]) },
  timeout: { flagsWithValue: new Set(["-s", "-k", "--signal", "--kill-after"]) },
  nice: { flagsWithValue: new Set(["-n"]) },
  ionice: { flagsWithValue: new Set(["-c", "-n"]) },
  exec: { flagsWithValue: new Set(["-a"]) },
  command: { flagsWithValue: new Set() },
  builtin: { flagsWithValue: new Set() },
}

/** Programs that run text the registry cannot read (a shell, eval, xargs, interpreters): always high. */
const OPAQUE = new Set([
  "sh",
  "bash",
  "zsh",
  "dash",
  "fish",
  "ksh",
  "busybox",
  "eval",
  "source",
  ".",
  "xargs",
  "python",
  "python3",
  "perl",
  "ruby",
  "node",
  "bun",
  "trap",
  "alias",
  "enable",
])

/** Shell words that only make sense in command position as syntax the registry does not follow. */
const RESERVED = new Set([
  "!",
  "if",
  "then",
  "else",
  "elif",
  "fi",
  "for",
  "while",
  "until",
  "do",
  "done",
  "case",
  "esac",
  "select",
  "function",
  "coproc",
  "{",
  "}",
])

/** Variables that change which program runs or what it loads: setting one makes the line high. */
const STEERING =
  /^(PATH|LD_[A-Z_]*|BASH_ENV|ENV|IFS|PS4|PROMPT_COMMAND|SHELLOPTS|BASHOPTS|GLOBIGNORE|CDPATH|HOME|TMPDIR|NODE_OPTIONS|[A-Z_]*OPEN|[A-Z_]*PAGER|[A-Z_]*EDITOR|[A-Z_]*ASKPASS|GIT_[A-Z_]*|NIX_[A-Z_]*|PYTHON[A-Z_]*|PERL[A-Z0-9_]*|RUBY[A-Z_]*|SYSTEMD_[A-Z_]*)$/

/** systemd targets that power off, reboot or isolate the machine whatever verb starts them. */
const POWER_UNITS =
  /^(reboot|poweroff|halt|kexec|rescue|emergency|shutdown|sleep|suspend|hibernate|hybrid-sleep|suspend-then-hibernate|soft-reboot|ctrl-alt-del)(\.target)?$/
/** systemctl options that take a value (`-n 5`), so the value is not read as the verb. */
const SYSTEMCTL_VALUED = new Set(["-n", "--lines", "-o", "--output", "-p", "--property", "-t", "--type", "-s"])
SYSTEMCTL_VALUED.add("--signal").add("--state").add("-H").add("--host").add("-M").add("--machine").add("--root")
/** `ip OBJECT [VERB]`: only these verbs (or none) only read. */
const IP_READ = new Set(["show", "list", "ls", "lst", "get", "monitor", "help"])

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
const max = (a: RiskLevel, b: RiskLevel): RiskLevel => (ORDER[a] >= ORDER[b] ? a : b)

/** A word as the shell would see it (`text`) and as typed (`raw`), to tell `rm` from `r\m` or `$X`. */
export interface Word {
  text: string
  raw: string
}

/** A redirection that writes: its target as typed, and whether it forces (`>|`) or reads and writes (`<>`). */
interface Write {
  target: string
  forced: boolean
}

export interface SimpleCommand {
  words: Word[]
  writes: Write[]
}

/**
 * Splits a shell line into simple commands, their words and their writing redirections. Quotes group
 * words; `;`, `&`, `&&`, `||`, `|` and newlines separate commands. It is a reader for classification,
 * not a shell: anything it cannot follow (substitutions, here-documents, unterminated quotes) is
 * reported in `opaque` so the caller treats the line as high.
 */
export function splitCommandLine(line: string): { commands: SimpleCommand[]; opaque: string | null } {
  const commands: SimpleCommand[] = []
  let words: Word[] = []
  let writes: Write[] = []
  let text = ""
  let raw = ""
  let inWord = false
  let opaque: string | null = null
  const endWord = () => {
    if (inWord) words.push({ text, raw })
    text = ""
    raw = ""
    inWord = false
  }
  const endCommand = () => {
    endWord()
    if (words.length > 0 || writes.length > 0) commands.push({ words, writes })
    words = []
    writes = []
  }
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string
    const next = line[i + 1]
    if (ch === "'") {
      const close = line.indexOf("'", i + 1)
      if (close < 0) {
        opaque ??= "an unterminated quote"
        break
      }
      text += line.slice(i + 1, close)
      raw += line.slice(i, close + 1)
      inWord = true
      i = close
    } else if (ch === '"') {
      let j = i + 1
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === "\\") j++
        else if (line[j] === "`" || (line[j] === "$" && line[j + 1] === "(")) opaque ??= "a command substitution"
      }
      if (j >= line.length) {
        opaque ??= "an unterminated quote"
        break
      }
      text += line.slice(i + 1, j).replace(/\\(.)/gs, "$1")
      raw += line.slice(i, j + 1)
      inWord = true
      i = j
    } else if (ch === "\\") {
      text += next ?? ""
      raw += `\\${next ?? ""}`
      inWord = true
      i++
    } else if (ch === "`" || (ch === "$" && next === "(")) {
      opaque ??= "a command substitution"
      text += ch
      raw += ch
      inWord = true
    } else if ((ch === "<" || ch === ">") && next === "(") {
      opaque ??= "a process substitution"
      text += ch
      raw += ch
      inWord = true
    } else if (ch === "(" || ch === ")") {
      // A subshell, or a function definition `f()`: syntax the reader does not follow.
      opaque ??= "a subshell or function definition"
      text += ch
      raw += ch
      inWord = true
    } else if (ch === "<" && next === "<") {
      opaque ??= "a here-document or here-string"
      endWord()
      i++
    } else if (ch === ";" || ch === "\n" || ch === "|" || ch === "&") {
      // `&>` and `>&` are redirections, handled below; here `&` ends a command (backgrounds it).
      if (ch === "&" && next === ">") {
        endWord()
        i = readWrite(line, i + 1, writes, false)
        continue
      }
      endCommand()
      if ((ch === "|" || ch === "&") && next === ch) i++
    } else if (ch === " " || ch === "\t" || ch === "\r") {
      endWord()
    } else if (ch === ">" || ch === "<") {
      // A leading fd number (`2>`) belongs to the redirection, not to the words.
      if (inWord && /^\d+$/.test(raw)) {
        text = ""
        raw = ""
        inWord = false
      } else endWord()
      if (ch === "<" && next !== ">") {
        i = skipTarget(line, i + 1)
        continue
      }
      const readWriteMode = ch === "<" && next === ">"
      i = readWrite(line, readWriteMode ? i + 1 : i, writes, readWriteMode)
    } else {
      text += ch
      raw += ch
      inWord = true
    }
  }
  endCommand()
  return { commands, opaque }
}

/** Past the spaces after a redirection operator and its target word; the index of its last character. */
function skipTarget(line: string, from: number): number {
  let i = from
  while (line[i] === " " || line[i] === "\t") i++
  while (i < line.length && !/[\s;&|<>()]/.test(line[i] as string)) i++
  return i - 1
}

/** Reads `>`, `>>`, `>|`, `>&N`, `<>` at `at` (pointing at `>`) and records the file it writes. */
function readWrite(line: string, at: number, writes: Write[], readWriteMode: boolean): number {
  let i = at + 1
  let forced = readWriteMode
  if (line[i] === ">") i++
  else if (line[i] === "|") {
    forced = true
    i++
  } else if (line[i] === "&") {
    // `>&2`, `>&-`: a descriptor, not a file.
    return skipTarget(line, i + 1)
  }
  while (line[i] === " " || line[i] === "\t") i++
  const start = i
  const end = skipTarget(line, i) + 1
  writes.push({ target: line.slice(start, end), forced })
  return end - 1
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)(\+?=)/
/** A program name as typed with nothing computed: no quotes, escapes, expansions, globs or braces. */
const PLAIN = /^[A-Za-z0-9_./+:@-]+$/
const DISCARDED = new Set(["/dev/null", "/dev/stdout", "/dev/stderr"])

/** How risky a write redirection is: /dev/null is nothing, the working directory and /tmp medium. */
function writeRisk(w: Write): { risk: RiskLevel; reason: string } | null {
  const path = w.target.replace(/^["']|["']$/g, "").replace(/\/{2,}/g, "/")
  if (DISCARDED.has(path)) return null
  if (w.forced) return { risk: "high", reason: `forces a write to ${w.target}` }
  if (!PLAIN.test(w.target)) return { risk: "high", reason: `writes to a computed path ${w.target}` }
  if (path.startsWith("/") && !path.startsWith("/tmp/")) return { risk: "high", reason: `writes to ${path}` }
  return { risk: "medium", reason: `writes to ${path}` }
}

function high(program: string, args: string[], reason: string): CommandPart {
  return { program, args, risk: "high", reason }
}

function assessSimple(cmd: SimpleCommand): CommandPart {
  let rest = cmd.words
  // Assignments before the program: harmless, unless they steer what runs.
  while (rest.length > 0) {
    const m = ASSIGNMENT.exec((rest[0] as Word).text)
    if (!m) break
    if (STEERING.test(m[1] as string)) return high("", [], `sets ${m[1]}, which changes what runs`)
    rest = rest.slice(1)
  }
  let wrapped: string | null = null
  for (;;) {
    const word = rest[0]
    const name = word?.text.replace(/^.*\//, "")
    const wrapper = name === undefined ? undefined : WRAPPERS[name]
    if (!word || !wrapper) break
    if (!PLAIN.test(word.raw)) break
    wrapped ??= name as string
    let i = 1
    while (i < rest.length && (rest[i] as Word).text.startsWith("-")) {
      const flag = (rest[i] as Word).text
      if (name === "env" && (flag === "-S" || flag.startsWith("--split-string") || flag.startsWith("-S")))
        return high("env", [], "env -S splits its argument into a command the registry cannot read")
      i += wrapper.flagsWithValue.has(flag) ? 2 : 1
    }
    // `timeout 10 cmd`: the duration is not the program.
    if (name === "timeout" && i < rest.length) i++
    while (i < rest.length && ASSIGNMENT.test((rest[i] as Word).text)) {
      const assigned = ASSIGNMENT.exec((rest[i] as Word).text)?.[1] as string
      if (STEERING.test(assigned)) return high(name as string, [], `sets ${assigned}, which changes what runs`)
      i++
    }
    rest = rest.slice(i)
  }
  const word = rest[0]
  const args = rest.slice(1).map((w) => w.text)
  if (!word) {
    const w = cmd.writes.map(writeRisk).find((r) => r !== null)
    if (w) return { program: wrapped ?? "", args, ...w }
    return { program: wrapped ?? "", args, risk: wrapped ? "medium" : "low", reason: "no program" }
  }
  const program = word.text.replace(/^.*\//, "")
  if (!PLAIN.test(word.raw))
    return high(
      word.raw,
      args,
      `the program name ${word.raw} is computed, quoted or globbed; the registry cannot tell what runs`,
    )
  if (RESERVED.has(program)) return high(program, args, `\`${program}\` is shell syntax the registry does not follow`)
  if (OPAQUE.has(program)) return high(program, args, `${program} runs text the registry cannot assess`)
  const entry = Object.hasOwn(REGISTRY, program) ? REGISTRY[program] : undefined
  if (!entry) return high(program, args, `${program} is not in the command registry`)

  let risk = entry.risk_level
  let reason = `${program}: ${entry.description.toLowerCase()}`
  const judged = judgeSubcommand(program, entry, rest.slice(1))
  if (judged) {
    risk = judged.risk
    reason = judged.reason
  }
  // A flag may lower the risk (`nix-store -q` only reads) unless another raises it (`--delete`).
  const flagged = (entry.riskyFlags ?? []).flatMap(({ pattern, risk: level }) => {
    const flag = args.find((a) => pattern.test(a))
    return flag === undefined ? [] : [{ flag, level }]
  })
  const raised = flagged.filter((f) => ORDER[f.level] > ORDER[risk]).sort((a, b) => ORDER[b.level] - ORDER[a.level])[0]
  const lowered = flagged.find((f) => ORDER[f.level] < ORDER[risk])
  const chosen = raised ?? lowered
  if (chosen) {
    risk = chosen.level
    reason = `${program} ${chosen.flag}`
  }
  if ((program === "export" || program === "declare" || program === "typeset" || program === "readonly") && args) {
    const steered = args.map((a) => a.replace(/=.*$/s, "")).find((n) => STEERING.test(n))
    if (steered) return high(program, args, `sets ${steered}, which changes what runs`)
  }
  if (wrapped === "sudo" && risk === "low") {
    risk = "medium"
    reason = `sudo ${program}: runs as another user`
  }
  for (const w of cmd.writes) {
    const r = writeRisk(w)
    if (r && ORDER[r.risk] > ORDER[risk]) {
      risk = r.risk
      reason = r.reason
    }
  }
  return { program, args, risk, reason }
}

/** The subcommand's own risk where the program has verbs: systemctl, ip, nix and the registry's maps. */
function judgeSubcommand(
  program: string,
  entry: RegistryEntry,
  words: Word[],
): { risk: RiskLevel; reason: string } | null {
  const valued = program === "systemctl" ? SYSTEMCTL_VALUED : new Set<string>()
  const positional: Word[] = []
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as Word
    if (w.text.startsWith("-")) {
      if (valued.has(w.text)) i++
      continue
    }
    positional.push(w)
  }
  if (program === "ip") {
    const object = positional[0]
    const verb = positional[1]
    if (!object) return null
    if (object.text === "netns" && verb?.text === "exec")
      return { risk: "high", reason: "ip netns exec runs a command" }
    if (verb === undefined || (PLAIN.test(verb.raw) && IP_READ.has(verb.text))) return null
    return { risk: "high", reason: `ip ${object.text} ${verb.text} changes the network` }
  }
  if (!entry.subcommands) return null
  const sub = positional[0]
  if (!sub) return null
  if (!PLAIN.test(sub.raw)) return { risk: "high", reason: `${program} ${sub.raw}: a computed subcommand` }
  const known = Object.hasOwn(entry.subcommands, sub.text) ? entry.subcommands[sub.text] : undefined
  if (!known) return null
  if (program === "systemctl" && ORDER[known] < ORDER.high) {
    const unit = positional.slice(1).find((u) => !PLAIN.test(u.raw) || POWER_UNITS.test(u.text))
    if (unit) return { risk: "high", reason: `systemctl ${sub.text} ${unit.raw} reaches a power or rescue target` }
  }
  return { risk: known, reason: `${program} ${sub.text}` }
}

/** The risk of a whole command line: its riskiest part. */
export function assessCommand(line: string): CommandAssessment {
  const { commands, opaque } = splitCommandLine(line)
  const parts = commands.map(assessSimple)
  let risk: RiskLevel = "low"
  for (const p of parts) risk = max(risk, p.risk)
  const reasons = parts.filter((p) => p.risk === risk).map((p) => p.reason)
  if (opaque) {
    risk = "high"
    reasons.unshift(`the line holds ${opaque}, which the registry cannot assess`)
  }
  return { risk, parts, reasons }
}

/** The seed 001 `/registry` answer. */
export function registryListing() {
  const commands = Object.fromEntries(
    Object.entries(REGISTRY).map(([name, { subcommands, riskyFlags, ...entry }]) => [
      name,
      {
        ...entry,
        ...(subcommands ? { subcommand_risk: subcommands } : {}),
        ...(riskyFlags
          ? { risky_flags: riskyFlags.map((f) => ({ pattern: f.pattern.source, risk_level: f.risk })) }
          : {}),
      },
    ]),
  )
  const categories = [...new Set(Object.values(REGISTRY).map((c) => c.category.split(".")[0] as string))].sort()
  return { total_commands: Object.keys(commands).length, categories, commands }
}
