// The command registry: the programs an operator or an AI agent may type, how risky each is, and the
// flags and subcommands known to keep it so. It is an allow-list (command-assessment.ts applies it):
// a program not listed here is high, and so is a listed one used with a flag, a subcommand or an
// operand the entry does not name. command-entry.ts says how an entry is written, and the entries for
// Nix and NixOS tools are in command-registry-nix.ts. Entries list only what they have checked: a flag
// missing here is one nobody has shown to be safe.
import { ANY, entry as e, HIGH, READ, type RegistryEntry } from "./command-entry.ts"
import { NIX_COMMANDS } from "./command-registry-nix.ts"

const SYSTEMCTL_FLAGS =
  "--no-pager --no-legend --plain --full --all --failed --value --quiet --user --system --recursive --lines: --output: --property: --type: --state:"

export const REGISTRY: Record<string, RegistryEntry> = {
  ls: READ("filesystem.content", "List directory contents", {
    output_format: "tabular",
    ...ANY,
    common_options: [
      { flag: "-l", description: "Long format" },
      { flag: "-a", description: "Show hidden files" },
    ],
  }),
  pwd: READ("filesystem.navigation", "Print the working directory", { short: "LP", maxOperands: 0 }),
  cd: READ("filesystem.navigation", "Change the working directory (persists in a session)", {
    short: "LP",
    maxOperands: 1,
  }),
  cat: READ("filesystem.content", "Print files", ANY),
  head: READ("filesystem.content", "Print the first lines of files", ANY),
  tail: READ("filesystem.content", "Print the last lines of files", ANY),
  // `+cmd` runs a less command (`+!sh`), -o/-O write a log file, -k reads key bindings.
  less: READ("filesystem.content", "Page through files", {
    short: "FRSXNimn",
    riskyFlags: [{ pattern: /^\+/, risk: "high" }],
  }),
  grep: READ("text.search", "Search text for a pattern", ANY),
  find: READ("filesystem.search", "Find files (-exec, -delete and -fprint are high)", {
    short: "HLP",
    long: "-name: -iname: -path: -ipath: -type: -xtype: -maxdepth: -mindepth: -mtime: -mmin: -atime: -amin: -ctime: -cmin: -newer: -size: -user: -group: -uid: -gid: -perm: -links: -inum: -samefile: -regex: -iregex: -regextype: -printf: -print -print0 -ls -prune -empty -xdev -mount -readable -writable -executable -nouser -nogroup -daystart -follow -not -a -o -and -or -true -false",
  }),
  wc: READ("text.analysis", "Count lines, words and bytes", ANY),
  // -o writes a file; --compress-program runs one.
  sort: READ("text.transform", "Sort lines", {
    short: "bdfgihMnRrsuVzk:t:S:",
    long: "--reverse --numeric-sort --human-numeric-sort --unique --key: --field-separator: --ignore-case --version-sort --stable --zero-terminated --general-numeric-sort --month-sort",
  }),
  // The second operand of uniq is a file it writes.
  uniq: READ("text.transform", "Collapse repeated lines", {
    short: "cdDiuzf:s:w:",
    long: "--count --repeated --unique --ignore-case",
    maxOperands: 1,
  }),
  cut: READ("text.transform", "Select fields from lines", ANY),
  // Both run programs from their scripts (awk's system(), GNU sed's `e`): what runs is not on the line.
  awk: HIGH("text.transform", "Pattern scanning and processing (can run programs)"),
  sed: HIGH("text.transform", "Stream editor (can run programs)"),
  sleep: READ("shell.builtin", "Wait a number of seconds", { operands: /^\d+(\.\d+)?[smhd]?$/ }),
  exit: READ("shell.builtin", "End the shell with a status", { operands: /^\d{1,3}$/, maxOperands: 1 }),
  ":": READ("shell.builtin", "Do nothing, successfully", ANY),
  // -v NAME reads an array subscript, which bash evaluates as arithmetic (and so runs `$(…)` in it).
  test: READ("shell.builtin", "Evaluate a condition", {
    short: "bcdefghknprstuwxzLOGNSao",
    long: "-eq -ne -lt -le -gt -ge -nt -ot -ef",
  }),
  "[": READ("shell.builtin", "Evaluate a condition", {
    short: "bcdefghknprstuwxzLOGNSao",
    long: "-eq -ne -lt -le -gt -ge -nt -ot -ef",
  }),
  // `set -k` turns later `NAME=value` arguments into assignments, `set -o` changes the shell's rules.
  set: HIGH("shell.builtin", "Set shell options (changes how later lines are read)"),
  nproc: READ("system.info", "Number of processors", ANY),
  lscpu: READ("system.info", "Processor details", { output_format: "tabular", ...ANY }),
  lsblk: READ("system.storage", "Block devices", { output_format: "tabular", ...ANY }),
  lsof: READ("system.process", "Open files", ANY),
  dmesg: READ("system.logs", "Kernel messages (clearing or console changes are high)", {
    short: "THwxkuLPtdrl:f:",
    long: "--ctime --human --follow --decode --kernel --userspace --color? --level: --facility: --time-format: --nopager --raw --notime --since: --until:",
  }),
  loginctl: READ("system.info", "Login sessions (verbs that change them are high)", {
    long: "--no-pager --no-legend --all --value --full --property:",
    short: "alp:",
    subcommands: Object.fromEntries(
      [
        "list-sessions",
        "session-status",
        "show-session",
        "list-users",
        "user-status",
        "show-user",
        "list-seats",
        "seat-status",
        "show-seat",
      ].map((v) => [v, "low" as const]),
    ),
  }),
  hostnamectl: READ("system.info", "Host name and OS (set-* is high)", {
    long: "--static --transient --pretty --json:",
    // `hostnamectl hostname NAME` sets it, so the verb is not on the list; `status` and none only read.
    subcommands: { status: "low" },
  }),
  who: READ("system.info", "Who is logged in", ANY),
  w: READ("system.info", "Who is logged in and what they run", ANY),
  last: READ("system.info", "Recent logins", ANY),
  vmstat: READ("system.memory", "Virtual memory statistics", { output_format: "tabular", ...ANY }),
  printenv: READ("system.info", "Print the environment", ANY),
  getent: READ("system.users", "Look up users, groups and hosts", ANY),
  groups: READ("system.users", "Groups of a user", ANY),
  dig: READ("networking", "DNS lookup", ANY),
  host: READ("networking", "DNS lookup", ANY),
  file: READ("filesystem.content", "Guess a file's type", { short: "bLhiksznNrpE", long: "--brief --mime" }),
  // -o writes its listing to a file.
  tree: READ("filesystem.content", "List a directory tree", {
    short: "adflpugshDFCnJxL:I:P:",
    long: "--noreport --dirsfirst",
  }),
  diff: READ("text.analysis", "Compare files", ANY),
  md5sum: READ("text.analysis", "MD5 checksums", ANY),
  sha256sum: READ("text.analysis", "SHA-256 checksums", ANY),
  basename: READ("text.transform", "Strip a path to its last part", ANY),
  dirname: READ("text.transform", "Strip a path's last part", ANY),
  tr: READ("text.transform", "Translate characters", ANY),
  jq: READ("text.transform", "Query JSON", { output_format: "json", ...ANY }),
  base64: READ("text.transform", "Encode or decode base64", ANY),
  seq: READ("text.transform", "Print a sequence of numbers", ANY),
  zcat: READ("filesystem.content", "Print compressed files", ANY),
  // Old-style `tar xzf`: the first operand is a cluster of flags (command-assessment.ts reads it so).
  // Not --to-command, --checkpoint-action, -I/--use-compress-program, -F/--info-script: they run programs.
  tar: e("filesystem.change", "Pack or unpack archives", "medium", {
    writes: { flags: ["-C", "--directory", "-f", "--file"] },
    short: "cxtvzjJpkC:f:",
    long: "--create --extract --list --verbose --gzip --bzip2 --xz --zstd --file: --directory: --exclude: --strip-components: --preserve-permissions --keep-old-files --no-same-owner",
    // Extracting makes the archive's links, which a later medium write could follow anywhere.
    riskyFlags: [{ pattern: /^(--extract|--get|-[A-Za-z]*x[A-Za-z]*)$/, risk: "high" }],
  }),
  gzip: e("filesystem.change", "Compress files", "medium", {
    writes: { operands: "all" },
    short: "cdfklnqrtv123456789",
  }),
  gunzip: e("filesystem.change", "Decompress files", "medium", {
    writes: { operands: "all" },
    short: "cfklnqrtv",
  }),
  sysctl: READ("system.kernel", "Read kernel parameters (writing them is high)", {
    short: "abeNnqr:",
    long: "--all --values --names --ignore --pattern:",
    riskyFlags: [{ pattern: /=/, risk: "high" }],
  }),
  modprobe: HIGH("system.kernel", "Load or unload kernel modules"),
  echo: READ("shell.builtin", "Print text", { short: "neE" }),
  // No flags: `printf -v NAME` assigns to a variable, subscripts included.
  printf: READ("shell.builtin", "Print formatted text"),
  true: READ("shell.builtin", "Succeed", ANY),
  false: READ("shell.builtin", "Fail", ANY),
  export: HIGH("shell.builtin", "Set an environment variable (persists in a session; it can steer later commands)"),
  unset: HIGH("shell.builtin", "Unset a variable (subscripts are evaluated as arithmetic)"),
  env: READ("system.info", "Print the environment or run a command in a changed one", { short: "0iu:" }),
  // `date -s` and `date MMDDhhmm` set the clock: only `+FORMAT` operands read it.
  date: READ("system.info", "Print the date", {
    short: "uRIr:d:",
    long: "--utc --rfc-email --iso-8601? --rfc-3339: --date: --reference:",
    operands: /^\+/,
  }),
  uptime: READ("system.info", "How long the system has run", ANY),
  uname: READ("system.info", "System name and kernel", ANY),
  // An operand or -F sets the host name.
  hostname: READ("system.info", "Print the host name", {
    short: "sfdiIAa",
    long: "--fqdn --short --domain",
    maxOperands: 0,
  }),
  whoami: READ("system.info", "Print the effective user", ANY),
  id: READ("system.info", "Print user and group ids", ANY),
  df: READ("system.storage", "File system usage", { output_format: "tabular", ...ANY }),
  du: READ("system.storage", "Disk usage of files", ANY),
  free: READ("system.memory", "Memory usage", { output_format: "tabular", ...ANY }),
  ps: READ("system.process", "List processes", { output_format: "tabular", ...ANY }),
  top: READ("system.process", "Process monitor", ANY),
  stat: READ("filesystem.content", "File status", ANY),
  readlink: READ("filesystem.content", "Resolve a symbolic link", ANY),
  realpath: READ("filesystem.content", "Resolve a path", ANY),
  which: READ("shell.lookup", "Locate a program", ANY),
  journalctl: READ("system.logs", "Query the systemd journal (vacuum, rotate and flush are high)", {
    short: "abefklmqrxNu:n:p:S:U:o:g:t:D:F:c:",
    long: "--unit: --user-unit: --lines: --follow --boot? --priority: --since: --until: --output: --reverse --no-pager --grep: --identifier: --user --system --all --no-hostname --utc --full --list-boots --disk-usage --directory: --file: --field: --fields --merge --dmesg --catalog --pager-end --cursor: --after-cursor: --show-cursor --quiet --case-sensitive? --output-fields:",
  }),
  // -b/-batch runs `ip` commands from a file; -force goes on after errors.
  ip: READ("networking", "Show addresses and routes (changing them is high)", {
    short: "46sdjpocn:",
    long: "-br -brief -color? -details -stats -json -pretty -oneline -family:",
  }),
  // -K kills sockets, -D dumps to a file.
  ss: READ("networking", "Socket statistics", {
    short: "tulnpaemisxwH46rOA:f:",
    long: "--tcp --udp --listening --numeric --processes --all --extended --memory --info --summary --unix --raw --no-header --resolve --oneline",
  }),
  ping: READ("networking", "Send ICMP echo requests", { short: "46nqc:i:W:w:s:" }),
  // -K reads options (an output file among them) from a config, -O names the file after the URL in the
  // working directory: neither is listed.
  // No -w/--write-out: since curl 8.3 its `%output{PATH}` writes (or `>>` appends) anywhere, as root.
  curl: e("networking", "Transfer data from or to a URL", "medium", {
    writes: { flags: ["-o", "--output"] },
    short: "sSfLIivko:H:X:d:u:m:A:e:",
    long: "--silent --show-error --fail --location --head --include --verbose --insecure --output: --header: --request: --data: --data-raw: --json: --user: --max-time: --connect-timeout: --retry: --user-agent: --compressed",
  }),
  // Without -O or -P it writes into the working directory under a name the URL chooses.
  wget: e("networking", "Download files (with -O or -P)", "medium", {
    needs: ["-O", "--output-document", "-P", "--directory-prefix"],
    writes: { flags: ["-O", "--output-document", "-P", "--directory-prefix"] },
    short: "qcSO:T:t:P:",
    long: "--quiet --continue --spider --server-response --output-document: --timeout: --tries: --directory-prefix: --no-check-certificate",
  }),
  mkdir: e("filesystem.change", "Make directories", "medium", {
    writes: { operands: "all" },
    short: "pvm:",
    long: "--parents --verbose --mode:",
  }),
  touch: e("filesystem.change", "Create files or change their times", "medium", {
    writes: { operands: "all" },
    short: "acmhd:r:t:",
    long: "--no-create --date: --reference:",
  }),
  // Only flags that copy what links point to: -a, -d, -P, -r, -s and -l would make links a later write
  // could follow out of the known places.
  cp: e("filesystem.change", "Copy files", "medium", {
    writes: { operands: "last", flags: ["-t", "--target-directory"] },
    short: "pvfinuLxTbt:",
    long: "--verbose --force --interactive --no-clobber --update --dereference --no-preserve: --target-directory: --no-target-directory",
  }),
  mv: e("filesystem.change", "Move files", "medium", {
    writes: { operands: "all", flags: ["-t", "--target-directory"] },
    short: "finuvTbt:",
    long: "--force --interactive --no-clobber --update --verbose --target-directory: --no-target-directory",
  }),
  // A link in a known place would let a later medium write (`> /tmp/l`) land wherever it points.
  ln: HIGH("filesystem.change", "Make links (a later write through the link lands where it points)"),
  tee: e("filesystem.change", "Write input to files", "medium", {
    writes: { operands: "all" },
    short: "aip",
    long: "--append",
  }),
  // A set-user-ID or set-group-ID bit, even on a file in /tmp, makes a program any local user runs as
  // its owner (root): `cp bash /tmp/sh; chmod 4755 /tmp/sh`.
  chmod: e("filesystem.permissions", "Change file modes (setuid and setgid are high)", "medium", {
    writes: { operands: "rest" },
    short: "Rvcf",
    long: "--recursive --verbose --changes --silent --reference:",
    // Any `+` or `=` of a clause, not only its first: `u-w+s` and `ug=rx+s` set the bit too.
    riskyFlags: [{ pattern: /^[0-7]*[2-7][0-7]{3}$|[+=][rwxXtugo]*s/, risk: "high" }],
  }),
  chown: e("filesystem.permissions", "Change file owners", "medium", {
    writes: { operands: "rest" },
    short: "RvcfhHLP",
    long: "--recursive --verbose --changes --silent --no-dereference --reference: --from:",
  }),
  rm: HIGH("filesystem.change", "Remove files"),
  rmdir: e("filesystem.change", "Remove empty directories", "medium", {
    writes: { operands: "all" },
    short: "pv",
    long: "--parents --verbose --ignore-fail-on-non-empty",
  }),
  // Signals by name (`-TERM`) or, as the first word only, number (`-9`) are words of their own
  // (command-flags.ts). Only processes named by id, and not init: `kill -9 -1` signals every process
  // the caller may (the node goes down, as with `reboot`), `kill 0` its whole group.
  kill: e("system.process", "Signal processes by id (not 1, 0 or negative ids)", "medium", {
    short: "lLs:n:",
    signals: true,
    operands: /^(?!1$)[1-9][0-9]*$/,
  }),
  // What a pattern matches is not on the line (`pkill -f .` matches sshd and init alike).
  pkill: HIGH("system.process", "Signal processes by name"),
  killall: HIGH("system.process", "Signal processes by name"),
  systemctl: e("system.services", "Control systemd units (verbs not listed are high)", "high", {
    short: "alqrn:o:p:t:",
    long: SYSTEMCTL_FLAGS,
    bare: "low",
    subcommands: {
      status: "low",
      show: "low",
      cat: "low",
      "list-units": "low",
      "list-unit-files": "low",
      "list-timers": "low",
      "list-sockets": "low",
      "list-dependencies": "low",
      "is-active": "low",
      "is-enabled": "low",
      "is-failed": "low",
      "is-system-running": "low",
      start: "medium",
      restart: "medium",
      reload: "medium",
      "try-restart": "medium",
      "reload-or-restart": "medium",
      "daemon-reload": "medium",
      "reset-failed": "medium",
      stop: "high",
      disable: "high",
      mask: "high",
      kill: "high",
      isolate: "high",
      reboot: "high",
      poweroff: "high",
      halt: "high",
    },
  }),
  ...NIX_COMMANDS,
  reboot: HIGH("system.power", "Reboot the machine"),
  shutdown: HIGH("system.power", "Shut the machine down"),
  poweroff: HIGH("system.power", "Power the machine off"),
  halt: HIGH("system.power", "Halt the machine"),
  dd: HIGH("system.storage", "Copy and convert raw data"),
  mkfs: HIGH("system.storage", "Make a file system"),
  fdisk: HIGH("system.storage", "Partition a disk"),
  parted: HIGH("system.storage", "Partition a disk"),
  wipefs: HIGH("system.storage", "Wipe file system signatures"),
  mount: HIGH("system.storage", "Mount a file system"),
  umount: HIGH("system.storage", "Unmount a file system"),
  useradd: HIGH("system.users", "Add a user"),
  userdel: HIGH("system.users", "Delete a user"),
  usermod: HIGH("system.users", "Change a user"),
  passwd: HIGH("system.users", "Change a password"),
  iptables: HIGH("networking.firewall", "Change the firewall"),
  nft: HIGH("networking.firewall", "Change the firewall"),
  crontab: HIGH("system.scheduling", "Change cron tables"),
  tmux: HIGH("shell.sessions", "Terminal multiplexer (runs commands it is given)"),
}

/** The `/registry` answer: each entry with its known flags, subcommands and risk-changing arguments. */
export function registryListing() {
  const commands = Object.fromEntries(
    Object.entries(REGISTRY).map(([name, entry]) => {
      const {
        subcommands,
        riskyFlags,
        short,
        long,
        operands,
        maxOperands,
        bare,
        signals,
        writes,
        needs,
        profiles,
        ...rest
      } = entry
      return [
        name,
        {
          ...rest,
          ...(subcommands ? { subcommand_risk: subcommands } : {}),
          ...(short !== undefined || long !== undefined
            ? { known_flags: { short: short ?? "", long: long?.split(" ") ?? [] } }
            : {}),
          ...(riskyFlags
            ? { risky_flags: riskyFlags.map((f) => ({ pattern: f.pattern.source, risk_level: f.risk })) }
            : {}),
        },
      ]
    }),
  )
  const categories = [...new Set(Object.values(REGISTRY).map((c) => c.category.split(".")[0] as string))].sort()
  return { total_commands: Object.keys(commands).length, categories, commands }
}
