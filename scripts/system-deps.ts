#!/usr/bin/env bun
// Installs the system tools Chimera's test suite runs for real (DESIGN.md, "Testing with real parts").
//
//   bun scripts/system-deps.ts           check; as root on Debian, apt-get install what is missing
//   bun scripts/system-deps.ts --check   only report; exit 1 if anything is missing
//   bun scripts/system-deps.ts --bench   also the peers scripts/bench.ts measures against (pssh, ansible)
//
// `npm test` runs it before `bun test`. When everything is present it prints one line and returns in
// milliseconds (it only looks up paths and runs `nix-store --version`). Not root and something missing:
// it prints the exact apt-get command to run and exits 1. It also makes sure Nix works as root in
// single-user mode (the suite never talks to a nix-daemon), i.e. the profiles directory exists.
import { existsSync, mkdirSync, readdirSync } from "node:fs"

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
  { tool: "tmux", pkg: "tmux" },
  { tool: "sshd", pkg: "openssh-server", dirs: () => SBIN },
  { tool: "ssh", pkg: "openssh-client" },
  { tool: "ssh-keygen", pkg: "openssh-client" },
  { tool: "initdb", pkg: "postgresql", dirs: postgresBinDirs },
  { tool: "pg_ctl", pkg: "postgresql", dirs: postgresBinDirs },
  { tool: "postgres", pkg: "postgresql", dirs: postgresBinDirs },
  { tool: "chromium", pkg: "chromium" },
  // The command API's sudo password path is tested against a real sudo (tests/support/sudo-user.ts).
  { tool: "sudo", pkg: "sudo" },
  { tool: "openssl", pkg: "openssl" },
]

/** Peers for the SSH fan-out benchmark; `npm test` does not need them, so only `--bench` installs them. */
const BENCH_REQUIREMENTS: Requirement[] = [
  { tool: "parallel-ssh", pkg: "pssh" },
  { tool: "ansible", pkg: "ansible" },
]

const NIX_PROFILES = "/nix/var/nix/profiles"
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
  const probe = Bun.spawn([store, "--version"], { env: NIX_ENV, stdin: "ignore", stdout: "ignore", stderr: "pipe" })
  const [stderr, code] = await Promise.all([new Response(probe.stderr).text(), probe.exited])
  if (code !== 0) problems.push(`\`nix-store --version\` failed: ${stderr.trim()}`)
  for (const dir of ["/nix/store", NIX_PROFILES]) if (!existsSync(dir)) problems.push(`${dir} does not exist`)
  // Test nodes bind-mount their own profiles directory; a nix-daemon outside the namespace would not see it.
  const remote = process.env.NIX_REMOTE
  if (remote && remote !== "local") problems.push(`NIX_REMOTE=${remote} is set; the suite uses Nix single-user as root`)
  return problems
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
