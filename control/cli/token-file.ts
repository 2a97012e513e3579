// Where `chimera login` keeps the session token for later commands: $XDG_CONFIG_HOME/chimera/token
// (default ~/.config/chimera/token), mode 0600 in a 0700 directory, as `{url, token, expiresAt}` so a
// token is only ever sent to the control plane that issued it.
import {
  chmodSync,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"
import { z } from "zod"

const StoredToken = z.object({ url: z.string(), token: z.string().min(16), expiresAt: z.string() }).strict()
export type StoredToken = z.infer<typeof StoredToken>

type Env = Record<string, string | undefined>

export function tokenFilePath(env: Env = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config")
  return join(base, "chimera", "token")
}

export function writeTokenFile(stored: StoredToken, env: Env = process.env): string {
  const path = tokenFilePath(env)
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  // mkdir leaves an existing directory's mode alone.
  chmodSync(dirname(path), 0o700)
  // A fresh file (O_EXCL: never through a symlink someone left at the name), 0600 from its first byte,
  // then renamed over the old one: the token is never in a file another user could open.
  const tmp = `${path}.${process.pid}.tmp`
  rmSync(tmp, { force: true })
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    writeSync(fd, `${JSON.stringify(stored)}\n`)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  return path
}

/** The stored token for `url`, or null when there is none, it is for another URL, or unreadable. */
export function readTokenFile(url: string, env: Env = process.env): StoredToken | null {
  const stored = _stored(env)
  return stored?.url === url ? stored : null
}

/** The control plane the stored token is for, when it is not `url` (what to tell someone it was not sent). */
export function tokenFileElsewhere(url: string, env: Env = process.env): string | null {
  const stored = _stored(env)
  return stored && stored.url !== url ? stored.url : null
}

function _stored(env: Env): StoredToken | null {
  try {
    const parsed = StoredToken.safeParse(JSON.parse(readFileSync(tokenFilePath(env), "utf8")))
    return parsed.success ? parsed.data : null
  } catch {
    return null
  }
}

export function removeTokenFile(env: Env = process.env): void {
  rmSync(tokenFilePath(env), { force: true })
}
