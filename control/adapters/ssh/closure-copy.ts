// Copies a closure to a target with `nix-copy-closure --to user@host`, as NixOS operators do by hand.
// Nix runs the real ssh client (not ssh2), so the executor's settings travel to it: NIX_SSHOPTS names
// an ssh configuration file made for the copy (copyConfig) and the same explicit port and user the
// commands' route was resolved with, so ssh reads the operator's ~/.ssh/config to the same HostName,
// Port, User, keys and ProxyJump; the same identity, the same known_hosts file with
// StrictHostKeyChecking=yes (accept-new with --trust-new-hosts), and BatchMode so a prompt can never
// hang a deploy. ssh's complaints are mapped to the same failure kinds as ssh2's, so a deploy reports
// one vocabulary.

import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { ExecResult, Target } from "../../domain/operation-ports.ts"
import { type Failure, SshFailure } from "./failure.ts"
import { type Hop, planHops } from "./hops.ts"
import { knownHostsPath, type SshExecutorOptions } from "./options.ts"
import { resolveRoute, type SshRoute } from "./ssh-config.ts"
import { configFiles, homeOf, sshHome } from "./ssh-config-files.ts"

export interface CopyOptions {
  useSubstitutes?: boolean
  timeoutMs?: number
}

/** Closures can be large; a copy gets this long unless told otherwise. */
export const DEFAULT_COPY_TIMEOUT_MS = 15 * 60_000

const _quoted = (value: string) => `"${value.replace(/["\\]/g, "\\$&")}"`

/**
 * The ssh configuration file the copy runs with (-F): Chimera's settings first, where ssh's "first
 * value wins" makes them beat anything below, then the operator's own files (Include), so that
 * HostName, Port, User, IdentityFile and ProxyJump resolve as `ssh -G` resolved them. A file rather
 * than -o options: ssh hands -F, and only -F, on to the ssh it runs for each ProxyJump hop, so the
 * jump hosts too are checked against Chimera's known_hosts files and never prompt. `jumps` are the
 * target's ProxyJump hops: a hop whose known_hosts file is not the target's gets its own, ahead.
 */
export function copyConfig(
  o: SshExecutorOptions,
  route: SshRoute,
  connectTimeoutMs: number,
  jumps: SshRoute[] = [],
): string {
  const env = o.env ?? process.env
  const home = homeOf(env)
  const identity = o.identity ?? (route.fromConfig ? undefined : join(home, ".ssh", "id_ed25519"))
  // The file's `~/…` keys are under $HOME for Chimera and under the password file's home for ssh: where
  // the two differ, ssh is given the keys as Chimera found them, ahead of the file's own (IdentityFile
  // adds up, so ssh offers these first).
  const ownKeys = !identity && route.fromConfig && home !== (sshHome() ?? home) ? route.identityFiles : []
  const knownHosts = knownHostsPath(o, route)
  // ssh matches a hop's Host blocks against the name ProxyJump gives it, which is the hop's alias.
  const hopBlocks = jumps
    .filter((j) => knownHostsPath(o, j) !== knownHosts && /^[\w.:-]+$/.test(j.alias))
    .flatMap((j) => [`Host ${j.alias}`, `  UserKnownHostsFile ${_quoted(knownHostsPath(o, j))}`])
  return [
    ...(hopBlocks.length ? [...hopBlocks, "Host *"] : []),
    `UserKnownHostsFile ${_quoted(knownHosts)}`,
    // Only the file Chimera was told about counts, as for the ssh2 connections.
    "GlobalKnownHostsFile /dev/null",
    `StrictHostKeyChecking ${o.trustNewHosts ? "accept-new" : "yes"}`,
    "BatchMode yes",
    `ConnectTimeout ${Math.max(1, Math.ceil(connectTimeoutMs / 1000))}`,
    ...(identity ? [`IdentityFile ${_quoted(identity)}`, "IdentitiesOnly yes"] : []),
    ...ownKeys.map((f) => `IdentityFile ${_quoted(f)}`),
    ...configFiles(route.configFile, env).map((f) => `Include ${_quoted(f.file)}`),
    "",
  ].join("\n")
}

function _classify(t: Target, stderr: string, code: number): Failure | undefined {
  if (code === 0) return undefined
  const says = (re: RegExp) => re.test(stderr)
  const tail = stderr.trim().split("\n").slice(-3).join(" | ")
  if (says(/REMOTE HOST IDENTIFICATION HAS CHANGED|host key .* has changed/i))
    return { kind: "host-key-mismatch", message: `${t.name}: nix-copy-closure: host key mismatch: ${tail}` }
  if (says(/No \S+ host key is known|Host key verification failed/i))
    return {
      kind: "unknown-host-key",
      message: `${t.name}: nix-copy-closure: unknown host key (rerun with --trust-new-hosts, or ssh-keyscan it into the known_hosts file): ${tail}`,
    }
  if (says(/Permission denied \(/)) return { kind: "auth-failed", message: `${t.name}: nix-copy-closure: ${tail}` }
  if (says(/Connection refused|No route to host|Network is unreachable|Could not resolve/i))
    return { kind: "unreachable", message: `${t.name}: nix-copy-closure: ${tail}` }
  if (says(/timed out/i)) return { kind: "timeout", message: `${t.name}: nix-copy-closure: ${tail}` }
  return { kind: "error", message: `${t.name}: nix-copy-closure exited ${code}: ${tail}` }
}

async function _tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await mkdtemp(join(tmpdir(), "chimera-copy-"))
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) }
}

export async function copyClosure(
  o: SshExecutorOptions,
  t: Target,
  path: string,
  opts: CopyOptions & { connectTimeoutMs: number },
): Promise<ExecResult> {
  const t0 = performance.now()
  const result = (r: Omit<ExecResult, "target" | "ms">): ExecResult => ({
    target: t,
    ...r,
    ms: Math.round(performance.now() - t0),
  })
  const fail = (message: string) =>
    result({ ok: false, exitCode: null, stdout: "", stderr: "", failure: { kind: "error", message } })
  const bin = Bun.which("nix-copy-closure")
  if (!bin) return fail("nix-copy-closure is not installed (Debian package nix-bin)")
  if (!Bun.which("ssh"))
    return fail(
      `${t.name}: ssh is not installed (Debian package openssh-client): nix-copy-closure needs it to copy closures`,
    )
  let route: SshRoute
  let jumps: SshRoute[]
  try {
    const env = o.env ?? process.env
    // Planned as the commands' connections are, so a ProxyCommand is refused here too.
    const hops = await planHops(t, (req) => resolveRoute(req, env))
    route = (hops.at(-1) as Hop).route
    jumps = hops.slice(0, -1).map((h) => h.route)
  } catch (error) {
    return fail(
      error instanceof SshFailure ? error.failure.message : `${t.name}: ${(error as Error).message ?? String(error)}`,
    )
  }
  await using dir = await _tempDir()
  if (/\s/.test(dir.path)) return fail(`NIX_SSHOPTS cannot carry a path with whitespace: ${dir.path} (set TMPDIR)`)
  const config = join(dir.path, "ssh_config")
  await writeFile(config, copyConfig(o, route, opts.connectTimeoutMs, jumps), { mode: 0o600 })
  // Nix splits NIX_SSHOPTS on spaces: the temp dir's path has none, -p and -l are a number and a user name.
  const sshopts = ["-F", config, ...route.sshArgs]
  // ssh takes a bare IPv6 address after user@; the host is the name the operator used, so ssh applies
  // the same Host blocks to it, and the user the one resolved (the same as ssh's own answer).
  const args = [bin, "--to", `${route.user}@${t.host}`, ...(opts.useSubstitutes ? ["--use-substitutes"] : []), path]
  const proc = Bun.spawn(args, {
    env: { ...process.env, ...o.env, NIX_SSHOPTS: sshopts.join(" ") },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  const timeoutMs = opts.timeoutMs ?? DEFAULT_COPY_TIMEOUT_MS
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    proc.kill("SIGKILL")
  }, timeoutMs)
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  clearTimeout(timer)
  const failure: Failure | undefined = timedOut
    ? { kind: "timeout", message: `${t.name}: nix-copy-closure did not finish within ${timeoutMs / 1000} s` }
    : _classify(t, stderr, code)
  return result({ ok: code === 0 && !timedOut, exitCode: timedOut ? null : code, stdout, stderr, failure })
}
