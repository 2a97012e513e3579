// Which credential the CLI sends to the control plane, and where it came from. Three sources, in this
// order: CHIMERA_TOKEN (automation sets it on purpose, so it wins), the session `chimera login` stored
// for this control plane's URL, then the admin token the control plane keeps in $CHIMERA_DATA_DIR (only
// readable on its own host, and only sent to a loopback URL). None goes over plain HTTP to another host
// (transport.ts). The order means a login as a less privileged user takes over from the
// local admin token on the same machine; `chimera whoami` and `--verbose` say which one is in use.
import { readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { isLoopbackHost } from "../../protocol/loopback.ts"
import { dataDir } from "../config.ts"
import { CliError } from "./errors.ts"
import { listenersFor, tcpListeners } from "./loopback-listener.ts"
import { readTokenFile, tokenFileElsewhere, tokenFilePath } from "./token-file.ts"
import { checkTransport, parseControlUrl } from "./transport.ts"

type Env = Record<string, string | undefined>

export type CredentialSource = "CHIMERA_TOKEN" | "login-session" | "admin-token-file"

export interface Credential {
  token: string
  source: CredentialSource
  /** The file it was read from (none for CHIMERA_TOKEN). */
  path: string | null
  /** When a login session ends (login sessions only). */
  expiresAt: string | null
}

/** Where `chimera web` listens unless told otherwise, and so where the CLI looks. */
const DEFAULT_CONTROL_URL = "http://127.0.0.1:8080"

export function controlUrl(env: Env = process.env): string {
  return (env.CHIMERA_URL || DEFAULT_CONTROL_URL).replace(/\/+$/, "")
}

export function controlCredential(env: Env = process.env): Credential {
  const url = controlUrl(env)
  checkTransport(url, env)
  if (env.CHIMERA_TOKEN)
    return { token: env.CHIMERA_TOKEN.trim(), source: "CHIMERA_TOKEN", path: null, expiresAt: null }
  const stored = readTokenFile(url, env)
  if (stored)
    return { token: stored.token, source: "login-session", path: tokenFilePath(env), expiresAt: stored.expiresAt }
  const path = join(dataDir(env), "admin.token")
  // A login kept for another control plane (another replica's URL, a port changed) is never sent here.
  const elsewhere = tokenFileElsewhere(url, env)
  const session = elsewhere
    ? `; the login session in ${tokenFilePath(env)} is for ${elsewhere}, and a session token goes only to the URL it was made at: \`chimera login\` at ${url}, or set CHIMERA_URL=${elsewhere}`
    : ""
  if (!isLoopbackHost(parseControlUrl(url).hostname))
    throw new CliError(
      `no token for ${url}: run \`chimera login\` or set CHIMERA_TOKEN (the admin token in ${path} is used on its own only for a control plane at a loopback address)${session}`,
      "E_NO_TOKEN",
    )
  const admin = _adminTokenFile(path)
  if (!admin)
    throw new CliError(
      elsewhere
        ? `no token for ${url}${session}; or set CHIMERA_TOKEN`
        : `no token: run \`chimera login\`, set CHIMERA_TOKEN, or run where the control plane keeps ${path} (looked in ${tokenFilePath(env)} too; replicas on PostgreSQL share the admin token in the data dir of the first one started)`,
      "E_NO_TOKEN",
    )
  _refuseForeignListener(url, admin.owner, path)
  return { token: admin.token, source: "admin-token-file", path, expiresAt: null }
}

/** "login session (~/.config/chimera/token, until …)", for people. */
export function describeCredential(c: Credential): string {
  if (c.source === "CHIMERA_TOKEN") return "CHIMERA_TOKEN (environment)"
  if (c.source === "login-session") return `login session (${c.path}, until ${c.expiresAt})`
  return `local admin token (${c.path})`
}

/** The admin token in `path` and the uid that owns the file, or null where there is none to read. */
function _adminTokenFile(path: string): { token: string; owner: number } | null {
  try {
    return { token: readFileSync(path, "utf8").trim(), owner: statSync(path).uid }
  } catch {
    return null
  }
}

/**
 * The admin token goes unasked to a loopback URL, where any local user may be listening instead of
 * the control plane (stopped, or on another address): it goes only to a listener that runs as the
 * token file's owner, as the control plane that wrote it does.
 */
function _refuseForeignListener(url: string, owner: number, path: string): void {
  const all = tcpListeners()
  if (all === null) return
  const u = parseControlUrl(url)
  const port = Number(u.port || (u.protocol === "https:" ? 443 : 80))
  const foreign = listenersFor(u.hostname, port, all).find((l) => l.uid !== owner)
  if (foreign)
    throw new CliError(
      `not sending the admin token in ${path} to ${url}: the program listening there runs as uid ${foreign.uid}, not as the token's owner (uid ${owner}), so it is not the control plane that made it; find it with \`ss -ltnp 'sport = :${port}'\` (a proxy you trust in front of it: set CHIMERA_TOKEN to send the token on purpose)`,
      "E_FOREIGN_LISTENER",
    )
}

/**
 * Checks the listener again before every request of this process that carries the local admin token:
 * `chimera dash`, `mcp` and `code` keep a client for hours, and a control plane that stops meanwhile
 * leaves its port to whoever takes it next. Installed once by the CLI's entry (run.ts).
 */
export function guardAdminToken(env: Env = process.env): void {
  const original = globalThis.fetch
  const guarded = async (input: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(input instanceof Request ? input.headers : undefined)
    for (const [k, v] of new Headers(init?.headers)) headers.set(k, v)
    const bearer = /^Bearer\s+(\S+)/i.exec(headers.get("authorization") ?? "")?.[1]
    if (bearer) {
      const path = join(dataDir(env), "admin.token")
      const admin = _adminTokenFile(path)
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url
      if (admin && bearer === admin.token) _refuseForeignListener(new URL(url).origin, admin.owner, path)
    }
    return original(input, init)
  }
  globalThis.fetch = Object.assign(guarded, original)
}
