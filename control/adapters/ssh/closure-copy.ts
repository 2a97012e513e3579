// Copies a closure to a target with `nix-copy-closure --to user@host`, as NixOS operators do by hand.
// Nix runs the real ssh client (not ssh2), so the executor's settings travel in NIX_SSHOPTS: the same
// identity, the same known_hosts file with StrictHostKeyChecking=yes (accept-new with
// --trust-new-hosts), the port, and BatchMode so a prompt can never hang a deploy. Nix splits
// NIX_SSHOPTS on spaces, so paths with whitespace are refused here rather than mangled. ssh's complaints
// are mapped to the same failure kinds as ssh2's, so a deploy reports one vocabulary.
import type { ExecResult, Target } from "../../domain/operation-ports.ts"
import type { Failure } from "./failure.ts"
import { identityPath, knownHostsPath, type SshExecutorOptions } from "./options.ts"

export interface CopyOptions {
  useSubstitutes?: boolean
  timeoutMs?: number
}

/** Closures can be large; a copy gets this long unless told otherwise. */
export const DEFAULT_COPY_TIMEOUT_MS = 15 * 60_000

export function sshOptions(o: SshExecutorOptions, t: Target, connectTimeoutMs: number): string[] {
  const knownHosts = knownHostsPath(o)
  const identity = identityPath(o)
  for (const path of [knownHosts, identity])
    if (path && /\s/.test(path)) throw new Error(`NIX_SSHOPTS cannot carry a path with whitespace: ${path}`)
  return [
    "-p",
    String(t.port),
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    // Only the file Chimera was told about counts, as for the ssh2 connections.
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    `StrictHostKeyChecking=${o.trustNewHosts ? "accept-new" : "yes"}`,
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${Math.max(1, Math.ceil(connectTimeoutMs / 1000))}`,
    ...(identity ? ["-i", identity, "-o", "IdentitiesOnly=yes"] : []),
  ]
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
  const bin = Bun.which("nix-copy-closure")
  if (!bin)
    return result({
      ok: false,
      exitCode: null,
      stdout: "",
      stderr: "",
      failure: { kind: "error", message: "nix-copy-closure is not installed (Debian package nix-bin)" },
    })
  let sshopts: string[]
  try {
    sshopts = sshOptions(o, t, opts.connectTimeoutMs)
  } catch (error) {
    return result({
      ok: false,
      exitCode: null,
      stdout: "",
      stderr: "",
      failure: { kind: "error", message: String(error) },
    })
  }
  // ssh takes a bare IPv6 address after user@ (the port travels in NIX_SSHOPTS).
  const args = [bin, "--to", `${t.user}@${t.host}`, ...(opts.useSubstitutes ? ["--use-substitutes"] : []), path]
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
