// The SSH executor's settings and where their defaults come from, as OpenSSH has them: a key file if
// one is named (`--identity`), otherwise the user's ssh-agent ($SSH_AUTH_SOCK) and then the key files
// ~/.ssh/config gives for the host (ssh's ~/.ssh/id_* when it gives none); host keys from the
// `--known-hosts` file, else the host's UserKnownHostsFile, else ~/.ssh/known_hosts. Private keys are
// read lazily and never logged: only their paths appear in messages.
import { existsSync } from "node:fs"
import { readFile, stat } from "node:fs/promises"

import { join } from "node:path"
import { type ParsedKey, utils } from "ssh2"
import type { SshRoute } from "./ssh-config.ts"
import { homeOf } from "./ssh-config-files.ts"

export interface SshExecutorOptions {
  /** Private key file (OpenSSH or PEM, unencrypted: an encrypted one goes in the agent). Default: the agent, then the host's IdentityFile entries (ssh-config.ts). */
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

export interface KeyFile {
  path: string
  privateKey: Buffer
}

/** What a connection offers, in order: the agent's keys first, then key files (as ssh does). */
export type Credentials = { kind: "ok"; agent: string | null; keys: KeyFile[] } | { kind: "none"; reason: string }

/** The known_hosts file: Chimera's setting, else the one ~/.ssh/config names for the host, else ~/.ssh/known_hosts. */
export function knownHostsPath(o: SshExecutorOptions, route?: SshRoute): string {
  return o.knownHosts ?? route?.knownHostsFile ?? join(homeOf(o.env ?? process.env), ".ssh", "known_hosts")
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

async function _agent(socket: string): Promise<string | null> {
  const s = await stat(socket).catch(() => null)
  return s?.isSocket() ? socket : null
}

const _staleAgent = (socket: string, s: boolean) =>
  `no ssh-agent at SSH_AUTH_SOCK=${socket} (${s ? "not a socket" : "no such file"}; a stale one from an earlier login?): start one and ssh-add a key, or pass --identity FILE (no key file from ~/.ssh/config or ~/.ssh/id_* could be used either)`

async function _keyFile(path: string): Promise<KeyFile | { path: string; why: string; missing: boolean }> {
  try {
    const privateKey = await readFile(path)
    const unusable = _unusableKey(path, privateKey)
    return unusable ? { path, why: unusable, missing: false } : { path, privateKey }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(error)
    return { path, why: `cannot read identity file ${path}: ${why}`, missing: code === "ENOENT" }
  }
}

/**
 * The credentials for one route. A key named to Chimera (`--identity`, `ssh.identity_file`) is the
 * only one offered, as before and as ssh's -i with IdentitiesOnly. Otherwise what ssh would offer: the
 * agent's keys (unless IdentitiesOnly), then the IdentityFile entries ~/.ssh/config gives for the host
 * (ssh's built-in ~/.ssh/id_* list when it gives none) that exist and can be read without a passphrase.
 * Without an ssh binary to ask, the agent or else ~/.ssh/id_ed25519, as before.
 */
export async function loadCredentials(o: SshExecutorOptions, route?: SshRoute): Promise<Credentials> {
  const env = o.env ?? process.env
  if (o.identity) {
    const key = await _keyFile(o.identity)
    return "privateKey" in key ? { kind: "ok", agent: null, keys: [key] } : { kind: "none", reason: key.why }
  }
  const socket = o.agentSocket ?? env.SSH_AUTH_SOCK
  const useAgent = socket && !route?.identitiesOnly
  const agent = useAgent ? await _agent(socket) : null
  const files = route?.fromConfig ? route.identityFiles : agent ? [] : [join(homeOf(env), ".ssh", "id_ed25519")]
  const found = await Promise.all(files.map(_keyFile))
  const keys = found.filter((k): k is KeyFile => "privateKey" in k)
  if (agent || keys.length) return { kind: "ok", agent, keys }
  if (useAgent) return { kind: "none", reason: _staleAgent(socket, existsSync(socket)) }
  // A file that is there but cannot be used says why; only missing ones mean "no key at all".
  const unusable = found.find((k) => !("privateKey" in k) && !k.missing)
  if (unusable && "why" in unusable) return { kind: "none", reason: unusable.why }
  const tried =
    files.length === 0
      ? `the SSH configuration gives ${route?.alias} IdentityFile none`
      : files.length === 1
        ? `${files[0]} does not exist`
        : `none of ${files.join(", ")} exists`
  const named =
    files.length && route?.identitiesConfigured ? ` (IdentityFile in the SSH configuration for ${route.alias})` : ""
  return {
    kind: "none",
    reason: `no SSH key: ${tried}${named} and no ssh-agent is running${socket ? "" : " (SSH_AUTH_SOCK unset)"}; pass --identity FILE`,
  }
}

/** How the credentials are named in messages: paths or the agent, never key material. */
export function describeCredentials(c: Credentials): string {
  if (c.kind === "none") return "no key"
  const parts = [...(c.agent ? [`the ssh-agent at ${c.agent}`] : []), ...c.keys.map((k) => `key ${k.path}`)]
  return parts.join(", ")
}
