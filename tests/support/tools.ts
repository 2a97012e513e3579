// Tests use real tools. One that is missing fails the test with the tool's name and the Debian
// package that brings it (`bun scripts/system-deps.ts` installs them as root); nothing skips.

import { readdirSync } from "node:fs"

const PACKAGES: Record<string, string> = {
  "nix-build": "nix-bin",
  "nix-env": "nix-bin",
  "nix-store": "nix-bin",
  "nix-instantiate": "nix-bin",
  unshare: "util-linux",
  nsenter: "util-linux",
  tmux: "tmux",
  sshd: "openssh-server",
  "ssh-keygen": "openssh-client",
  chromium: "chromium",
  pg_ctl: "postgresql",
  initdb: "postgresql",
  runuser: "util-linux",
  aiosmtpd: "python3-aiosmtpd",
  openssl: "openssl",
}

// Debian keeps the PostgreSQL server's programs in a versioned directory off PATH.
const POSTGRES_BINS = (() => {
  try {
    return readdirSync("/usr/lib/postgresql").map((v) => `/usr/lib/postgresql/${v}/bin`)
  } catch {
    return []
  }
})()

/** The absolute path of `tool`, or an Error naming the package to install. */
export function requireTool(tool: string): string {
  const path = Bun.which(tool, { PATH: [process.env.PATH ?? "", "/usr/sbin", "/sbin", ...POSTGRES_BINS].join(":") })
  if (path) return path
  const pkg = PACKAGES[tool] ?? tool
  throw new Error(
    `this test needs \`${tool}\`, which is not installed: run \`bun scripts/system-deps.ts\` as root (Debian package ${pkg})`,
  )
}

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command to completion and returns its exit code and output; never throws for a non-zero exit. */
export async function run(
  cmd: string[],
  opts: { env?: Record<string, string | undefined>; stdin?: string; cwd?: string } = {},
): Promise<Run> {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { code, stdout, stderr }
}

/** Like `run`, but throws with the command's stderr when it exits non-zero. */
export async function runOk(
  cmd: string[],
  opts: { env?: Record<string, string | undefined>; stdin?: string } = {},
): Promise<string> {
  const result = await run(cmd, opts)
  if (result.code !== 0)
    throw new Error(`\`${cmd.join(" ")}\` exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`)
  return result.stdout
}
