// The SSH executor's settings and where their defaults come from, as the issue and OpenSSH have them:
// a key file if one is named (`--identity`), otherwise the user's ssh-agent ($SSH_AUTH_SOCK), otherwise
// ~/.ssh/id_ed25519; host keys from ~/.ssh/known_hosts unless `--known-hosts` names another file. The
// private key is read once, lazily, and never logged: only its path appears in messages.
import { readFile, stat } from "node:fs/promises"
import { homedir } from "node:os"
import { join } from "node:path"
import { type ParsedKey, utils } from "ssh2"

export interface SshExecutorOptions {
  /** Private key file (OpenSSH or PEM, unencrypted: an encrypted one goes in the agent). Default: the agent, else ~/.ssh/id_ed25519. */
  identity?: string
  /** ssh-agent socket; default $SSH_AUTH_SOCK when no identity file is named. */
  agentSocket?: string
  /** Default ~/.ssh/known_hosts. */
  knownHosts?: string
  /** Record unknown host keys instead of refusing them (a changed key is always refused). */
  trustNewHosts?: boolean
  /** Targets in flight at once in execMany (default 10). */
  parallel?: number
  /** Per target, connect plus command (default 30 s). */
  timeoutMs?: number
  /** SSH keep-alive on pooled connections (default 15 s; 0 turns it off). */
  keepaliveMs?: number
  /** Output kept of each stream of a command, stdout and stderr (default 16 MiB); the rest is dropped with a note. */
  maxOutputBytes?: number
  /** Where HOME and SSH_AUTH_SOCK are read (default process.env). */
  env?: Record<string, string | undefined>
}

export const DEFAULT_PARALLEL = 10
export const DEFAULT_TIMEOUT_MS = 30_000
export const DEFAULT_KEEPALIVE_MS = 15_000

export type Credentials =
  | { kind: "key"; path: string; privateKey: Buffer }
  | { kind: "agent"; socket: string }
  | { kind: "none"; reason: string }

const _home = (env: Record<string, string | undefined>) => env.HOME || homedir()

export function knownHostsPath(o: SshExecutorOptions): string {
  return o.knownHosts ?? join(_home(o.env ?? process.env), ".ssh", "known_hosts")
}

/** The key file ssh would use too (for nix-copy-closure), or null when the agent is the way. */
export function identityPath(o: SshExecutorOptions): string | null {
  const env = o.env ?? process.env
  if (o.identity) return o.identity
  if (o.agentSocket ?? env.SSH_AUTH_SOCK) return null
  return join(_home(env), ".ssh", "id_ed25519")
}

// Chimera cannot ask for a passphrase, and ssh2 would only say "Cannot parse privateKey" without the
// file's name, once per target: an unusable file is named here, once, with the way out.
function _unusableKey(path: string, privateKey: Buffer): string | null {
  const parsed = utils.parseKey(privateKey)
  // OpenSSH's own format may hold several keys (ssh2 uses the first), though the types say one.
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed
  if (key instanceof Error)
    return /encrypted/i.test(key.message)
      ? `identity file ${path} is encrypted with a passphrase, which Chimera cannot ask for: add it to an ssh-agent (ssh-add ${path}) and leave out --identity`
      : `identity file ${path} holds no private key that can be read (${key.message})`
  return key?.isPrivateKey() ? null : `identity file ${path} holds no private key (a .pub file?)`
}

async function _agent(socket: string): Promise<Credentials> {
  const s = await stat(socket).catch(() => null)
  if (s?.isSocket()) return { kind: "agent", socket }
  return {
    kind: "none",
    reason: `no ssh-agent at SSH_AUTH_SOCK=${socket} (${s ? "not a socket" : "no such file"}; a stale one from an earlier login?): start one and ssh-add a key, unset SSH_AUTH_SOCK to use ~/.ssh/id_ed25519, or pass --identity FILE`,
  }
}

export async function loadCredentials(o: SshExecutorOptions): Promise<Credentials> {
  const env = o.env ?? process.env
  const socket = o.agentSocket ?? env.SSH_AUTH_SOCK
  if (!o.identity && socket) return _agent(socket)
  const path = identityPath(o) as string
  try {
    const privateKey = await readFile(path)
    const unusable = _unusableKey(path, privateKey)
    return unusable ? { kind: "none", reason: unusable } : { kind: "key", path, privateKey }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(error)
    return {
      kind: "none",
      reason: o.identity
        ? `cannot read identity file ${path}: ${why}`
        : `no SSH key: ${path} does not exist and no ssh-agent is running (SSH_AUTH_SOCK unset); pass --identity FILE`,
    }
  }
}

/** How the credentials are named in messages: a path or the agent, never key material. */
export function describeCredentials(c: Credentials): string {
  if (c.kind === "key") return `key ${c.path}`
  if (c.kind === "agent") return `the ssh-agent at ${c.socket}`
  return "no key"
}
