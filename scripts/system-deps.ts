#!/usr/bin/env bun
// Installs the system tools Chimera's test suite runs for real: it mocks nothing that can run here
// (Nix, tmux, sshd, PostgreSQL, Chromium, an SMTP server, …).
//
//   bun scripts/system-deps.ts           check; as root on Debian, apt-get install what is missing
//   bun scripts/system-deps.ts --check   only report; exit 1 if anything is missing
//   bun scripts/system-deps.ts --bench   also the peers scripts/bench.ts measures against (pssh, ansible)
//
// `npm test` runs it before `bun test`. When everything is present it prints one line and returns in
// a fraction of a second (it looks up paths, runs `nix-store --version` and, as root, builds a one-line
// derivation that is cached after the first time). Not root and something missing: it prints the exact
// apt-get command to run and exits 1. It also makes sure Nix works as root in single-user mode (the
// suite never talks to a nix-daemon): the profiles directory exists, and nix.conf needs no build users.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs"

interface Requirement {
  tool: string
  pkg: string
  /** Where to look besides PATH (Debian keeps the PostgreSQL server binaries off PATH). */
  dirs?: () => string[]
}

const SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"]

const postgresBinDirs = (): string[] => {
  try {
    return readdirSync("/usr/lib/postgresql")
      .sort((a, b) => Number(b) - Number(a))
      .map((version) => `/usr/lib/postgresql/${version}/bin`)
  } catch {
    return []
  }
}

const REQUIREMENTS: Requirement[] = [
  { tool: "nix-build", pkg: "nix-bin" },
  { tool: "nix-env", pkg: "nix-bin" },
  { tool: "nix-store", pkg: "nix-bin" },
  { tool: "nix-instantiate", pkg: "nix-bin" },
  { tool: "unshare", pkg: "util-linux" },
  { tool: "nsenter", pkg: "util-linux" },
  // Tests play a local user with setpriv, and trace what a process starts (its argv) with strace.
  { tool: "setpriv", pkg: "util-linux" },
  { tool: "strace", pkg: "strace" },
  { tool: "tmux", pkg: "tmux" },
  { tool: "sshd", pkg: "openssh-server", dirs: () => SBIN },
  { tool: "ssh", pkg: "openssh-client" },
  { tool: "ssh-keygen", pkg: "openssh-client" },
  { tool: "initdb", pkg: "postgresql", dirs: postgresBinDirs },
  { tool: "pg_ctl", pkg: "postgresql", dirs: postgresBinDirs },
  { tool: "postgres", pkg: "postgresql", dirs: postgresBinDirs },
  { tool: "chromium", pkg: "chromium" },
  // The metrics endpoint is scraped by a real Prometheus, and its output checked by promtool.
  { tool: "prometheus", pkg: "prometheus" },
  { tool: "promtool", pkg: "prometheus" },
  // The command API's sudo password path is tested against a real sudo (tests/support/sudo-user.ts).
  { tool: "sudo", pkg: "sudo" },
  { tool: "openssl", pkg: "openssl" },
  // A command stopped on the node at its timeout still runs under a login shell that is not sh.
  { tool: "fish", pkg: "fish" },
  { tool: "tcsh", pkg: "tcsh" },
  // Email notifications are delivered to a real SMTP server (tests/support/smtp-server.ts).
  { tool: "aiosmtpd", pkg: "python3-aiosmtpd" },
]

/** Peers for the SSH fan-out benchmark; `npm test` does not need them, so only `--bench` installs them. */
const BENCH_REQUIREMENTS: Requirement[] = [
  { tool: "parallel-ssh", pkg: "pssh" },
  { tool: "ansible", pkg: "ansible" },
]

const NIX_PROFILES = "/nix/var/nix/profiles"
const NIX_CONF = "/etc/nix/nix.conf"
// Every nix command this script runs: never ask a binary cache (the CI network reaches npm and Debian only).
const NIX_ENV = { ...process.env, NIX_CONFIG: `${process.env.NIX_CONFIG ?? ""}\nsubstituters =\n` }

const checkOnly = process.argv.includes("--check")
if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log("usage: bun scripts/system-deps.ts [--check] [--bench]")
  process.exit(0)
}
if (process.argv.includes("--bench")) REQUIREMENTS.push(...BENCH_REQUIREMENTS)

const find = (req: Requirement): string | null =>
  Bun.which(req.tool, { PATH: [process.env.PATH ?? "", ...SBIN, ...(req.dirs?.() ?? [])].join(":") })

const missing = (): Requirement[] => REQUIREMENTS.filter((req) => find(req) === null)

const packagesOf = (reqs: Requirement[]): string[] => [...new Set(reqs.map((r) => r.pkg))]

/** Problems with Nix itself, once its binaries are present; empty when root can use it single-user. */
const nixProblems = async (): Promise<string[]> => {
  const problems: string[] = []
  const store = Bun.which("nix-store", { PATH: process.env.PATH ?? "" })
  if (!store) return ["nix-store is not on PATH"]
  if (process.getuid?.() === 0 && !checkOnly) {
    try {
      mkdirSync(`${NIX_PROFILES}/per-user/root`, { recursive: true })
    } catch (err) {
      problems.push(`cannot create ${NIX_PROFILES}/per-user/root: ${(err as Error).message}`)
    }
  }
  if (process.getuid?.() === 0 && !checkOnly) {
    const fix = singleUserConfig()
    if (fix) problems.push(fix)
  }
  const { code, stderr } = await quietly([store, "--version"])
  if (code !== 0) problems.push(`\`nix-store --version\` failed: ${stderr.trim()}`)
  else if (process.getuid?.() === 0) problems.push(...(await buildProblems()))
  for (const dir of ["/nix/store", NIX_PROFILES]) if (!existsSync(dir)) problems.push(`${dir} does not exist`)
  // Test nodes bind-mount their own profiles directory; a nix-daemon outside the namespace would not see it.
  const remote = process.env.NIX_REMOTE
  if (remote && remote !== "local") problems.push(`NIX_REMOTE=${remote} is set; the suite uses Nix single-user as root`)
  return problems
}

/**
 * Nix single-user as root, configured the way Debian's nix-setup-systemd does it, for hosts where
 * nix-bin came without that recommended package (as `--no-install-recommends` below installs it):
 *  - As root, Nix builds as the members of the group `nixbld` unless nix.conf names another or none;
 *    without the group every build fails ("the group 'nixbld' specified in 'build-users-group' does
 *    not exist"). Single-user as root needs no build users: `build-users-group =`.
 *  - The suite builds plain derivations with the host's /bin/sh and tools (there is no nixpkgs here),
 *    which Nix's sandbox hides: `sandbox = false`, as nix-setup-systemd's own nix.conf sets it.
 * A setting nix.conf already has is left alone. Returns a problem to report, or null.
 */
function singleUserConfig(): string | null {
  const conf = existsSync(NIX_CONF) ? readFileSync(NIX_CONF, "utf8") : ""
  const has = (key: string) => new RegExp(`^\\s*${key}\\s*=`, "m").test(conf)
  const groups = existsSync("/etc/group") ? readFileSync("/etc/group", "utf8") : ""
  const lines = [
    ...(has("build-users-group") || /^nixbld:/m.test(groups) ? [] : ["build-users-group ="]),
    ...(has("sandbox") ? [] : ["sandbox = false"]),
  ]
  if (lines.length === 0) return null
  try {
    mkdirSync("/etc/nix", { recursive: true })
    const gap = conf === "" || conf.endsWith("\n") ? "" : "\n"
    appendFileSync(
      NIX_CONF,
      `${gap}# Added by Chimera's scripts/system-deps.ts: Nix single-user as root.\n${lines.join("\n")}\n`,
    )
    console.log(`system-deps: nix: set ${lines.map((l) => `\`${l}\``).join(" and ")} in ${NIX_CONF}`)
    return null
  } catch (err) {
    return `cannot write ${NIX_CONF} (${lines.join(", ")}): ${(err as Error).message}`
  }
}

/** Runs a nix command with NIX_ENV, its output ignored; its exit code and stderr. */
async function quietly(cmd: string[]): Promise<{ code: number; stderr: string }> {
  const proc = Bun.spawn(cmd, { env: NIX_ENV, stdin: "ignore", stdout: "ignore", stderr: "pipe" })
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
  return { code, stderr }
}

/** Builds a one-line derivation, as the suite's fixtures do (builder /bin/sh, no substituters). */
async function buildProblems(): Promise<string[]> {
  const expr =
    'derivation { name = "chimera-system-deps-probe"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ok > $out" ]; }'
  const { code, stderr } = await quietly(["nix-build", "--no-out-link", "-E", expr])
  if (code === 0) return []
  const last = stderr.trim().split("\n").slice(-3).join(" | ")
  return [`a one-line derivation does not build as root: ${last}`]
}

const summary = (): string => packagesOf(REQUIREMENTS).join(", ")

let absent = missing()
if (absent.length === 0) {
  const problems = await nixProblems()
  if (problems.length === 0) {
    console.log(`system-deps: all present (${summary()})`)
    process.exit(0)
  }
  for (const p of problems) console.error(`system-deps: nix: ${p}`)
  process.exit(1)
}

const pkgs = packagesOf(absent)
const tools = absent.map((r) => r.tool).join(", ")
const command = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs.join(" ")}`
console.error(`system-deps: missing ${tools}`)

if (checkOnly) {
  console.error(`system-deps: to install, run as root: ${command}`)
  process.exit(1)
}
if (process.getuid?.() !== 0) {
  console.error(`system-deps: not root; run as root:\n  ${command}`)
  process.exit(1)
}
if (!Bun.which("apt-get")) {
  console.error(
    `system-deps: apt-get not found (this script installs on Debian); install these packages: ${pkgs.join(" ")}`,
  )
  process.exit(1)
}

const apt = async (args: string[]): Promise<void> => {
  const proc = Bun.spawn(["apt-get", ...args], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    stdin: "ignore",
    stdout: "inherit",
    stderr: "inherit",
  })
  const code = await proc.exited
  if (code !== 0) {
    console.error(`system-deps: \`apt-get ${args.join(" ")}\` exited ${code}`)
    process.exit(1)
  }
}

console.log(`system-deps: installing ${pkgs.join(" ")} (for ${tools})`)
await apt(["update"])
await apt(["install", "-y", "--no-install-recommends", ...pkgs])

absent = missing()
if (absent.length > 0) {
  console.error(`system-deps: still missing after install: ${absent.map((r) => `${r.tool} (${r.pkg})`).join(", ")}`)
  process.exit(1)
}
const problems = await nixProblems()
for (const p of problems) console.error(`system-deps: nix: ${p}`)
if (problems.length > 0) process.exit(1)
console.log(`system-deps: installed ${pkgs.join(" ")}; all present`)
