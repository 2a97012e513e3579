// Which files OpenSSH reads its configuration from, and whether they say different things of different
// hosts (ssh-config.ts asks `ssh -G` once for every host when they do not). ssh finds `~` through the
// password database, Chimera through $HOME: the two are told apart here.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { homedir } from "node:os"
import { basename, dirname, isAbsolute, join } from "node:path"

/** A configuration file, and the directory its relative `Include`s are found under. */
export interface SshFile {
  file: string
  base: string
}

/** The home Chimera reads its own files under: $HOME, as for known_hosts and the key. */
export const homeOf = (env: Record<string, string | undefined>) => env.HOME || homedir()

let passwdHome: string | null | undefined
/**
 * The home ssh uses: the password database's, never $HOME (Bun's os.userInfo() reads $HOME, so the
 * file is read here). null when this user is not in /etc/passwd (LDAP and the like): then $HOME is
 * taken to be it.
 */
export function sshHome(): string | null {
  if (passwdHome !== undefined) return passwdHome
  const uid = String(process.getuid?.() ?? "")
  let text = ""
  try {
    text = readFileSync("/etc/passwd", "utf8")
  } catch {}
  const entry = text.split("\n").find((l) => l.split(":")[2] === uid)
  passwdHome = entry?.split(":")[5] || null
  return passwdHome
}

/**
 * The file ssh is pointed at with -F, or null for its own (~/.ssh/config, then /etc/ssh/ssh_config).
 * ssh finds ~/.ssh/config through the password database, Chimera finds ~ through $HOME (as for
 * known_hosts and the key): when the two differ, ssh is pointed at $HOME's file (or at none), so that
 * ssh and Chimera read the same configuration. -F also skips /etc/ssh/ssh_config, as with ssh -F.
 */
export function configFile(env: Record<string, string | undefined>): string | null {
  const home = homeOf(env)
  if (home === (sshHome() ?? home)) return null
  const file = join(home, ".ssh", "config")
  return existsSync(file) ? file : "/dev/null"
}

/**
 * The files ssh reads its configuration from, in order, given configFile's answer: -F's, or the
 * user's and the system's; each with the directory its relative `Include`s are under.
 */
export function configFiles(config: string | null, env: Record<string, string | undefined>): SshFile[] {
  if (config === "/dev/null") return []
  if (config) return [{ file: config, base: join(homeOf(env), ".ssh") }]
  // configFile says null only where $HOME is the password database's home (or that has none).
  const home = sshHome() ?? homeOf(env)
  return [
    { file: join(home, ".ssh", "config"), base: join(home, ".ssh") },
    { file: "/etc/ssh/ssh_config", base: "/etc/ssh" },
  ]
}

/**
 * `Include`'s paths as ssh finds them: ~ is home, a relative one is under `base`, `*` and `?` glob the
 * last part; null for what this does not follow (a glob in a directory's name, a token).
 */
function _included(pattern: string, base: string, home: string): string[] | null {
  const path = pattern.replace(/^~(?=\/)/, home)
  const full = isAbsolute(path) ? path : join(base, path)
  const name = basename(full)
  if (/[*?[%$]/.test(dirname(full)) || /[%$]/.test(name)) return null
  if (!/[*?[]/.test(name)) return [full]
  const re = new RegExp(
    `^${name
      .replace(/[.+^${}()|\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
  )
  try {
    return readdirSync(dirname(full))
      .filter((f) => re.test(f))
      .sort()
      .map((f) => join(dirname(full), f))
  } catch {
    return []
  }
}

/**
 * Whether any of ssh's files (and what they Include) has a `Host` other than `Host *`, or any `Match`:
 * then what ssh says of one host may not hold for another. An unreadable Include counts as saying so.
 */
export function hostSpecific(files: SshFile[], home: string, depth = 0): boolean {
  for (const { file, base } of files) {
    let text: string
    try {
      text = readFileSync(file, "utf8")
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue
      return true
    }
    for (const raw of text.split("\n")) {
      const line = raw.trim()
      if (line === "" || line.startsWith("#")) continue
      const [keyword = "", ...rest] = line.split(/[\s=]+/)
      const args = rest.filter((a) => a !== "" && !a.startsWith("#"))
      const key = keyword.toLowerCase()
      if (key === "match") return true
      if (key === "host" && !(args.length === 1 && args[0] === "*")) return true
      // ssh -G canonicalises the name it is given (the DNS, CanonicalDomains) and reads the files again
      // with the result: what it says of a name that resolves to nothing is no answer for one that does.
      if (key === "canonicalizehostname" && !["no", "false"].includes(args[0]?.toLowerCase() ?? "no")) return true
      if (key === "include") {
        if (depth >= 16) return true
        const found = args.map((a) => _included(a, base, home))
        if (found.some((f) => f === null)) return true
        const more = found.flatMap((f) => f ?? []).map((f) => ({ file: f, base }))
        if (hostSpecific(more, home, depth + 1)) return true
      }
    }
  }
  return false
}
