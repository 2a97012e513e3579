// The agent's heal and a person's `nixos-rebuild switch` must not run together: two activations at
// once interleave unit restarts and /etc, and a profile set by one under the other's switch leaves a
// system nobody chose. NixOS's own switch-to-configuration takes an exclusive flock(2) on
// /run/nixos/switch-to-configuration.lock and gives up at once when it is held. The agent takes the
// same lock, with the same flock semantics (through util-linux's `flock`, so the lock is the kernel's
// and dies with its holder), in two places:
// - around `nix-env -p PROFILE --set`, so the profile is never moved under a switch in progress;
// - just before its own switch-to-configuration, which then takes the lock itself: the agent waits
//   for it to be free rather than let the switch fail at once.
// The wait is bounded (--switch-lock-wait); past it the heal is skipped and reported as failed with
// the reason, and retried with the heal backoff, so a switch by hand is never broken by the agent.
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs"
import { dirname } from "node:path"
import { createLogger } from "../protocol/log.ts"
import { type CommandResult, runCommand } from "./nix-system.ts"

const log = createLogger("switch-lock")

/** The lock NixOS's switch-to-configuration takes. */
export const SWITCH_LOCK_PATH = "/run/nixos/switch-to-configuration.lock"
/** The default bound on waiting for another switch to finish, in seconds. */
export const DEFAULT_SWITCH_LOCK_WAIT_SECONDS = 120
/** `flock --conflict-exit-code`: told apart from the command's own exit codes. */
export const LOCK_BUSY_CODE = 75

export interface SwitchLock {
  readonly path: string
  readonly waitSeconds: number
  /** Runs `cmd` holding the lock, after waiting for it (bounded); LOCK_BUSY_CODE when it stayed held. */
  holding(cmd: string[], timeoutSeconds: number): Promise<CommandResult>
  /** Waits (bounded) until nobody holds the lock; LOCK_BUSY_CODE when it stayed held. */
  awaitFree(): Promise<CommandResult>
}

export function createSwitchLock(opts: { path?: string; waitSeconds?: number } = {}): SwitchLock {
  const path = opts.path ?? SWITCH_LOCK_PATH
  const waitSeconds = opts.waitSeconds ?? DEFAULT_SWITCH_LOCK_WAIT_SECONDS
  const explain = (r: CommandResult): CommandResult =>
    r.code === LOCK_BUSY_CODE
      ? {
          code: r.code,
          output: `${r.output}${r.output ? "\n" : ""}another switch (nixos-rebuild or switch-to-configuration) held ${path} for more than ${waitSeconds} s${_held(path)}; this heal was skipped and will be retried`,
        }
      : r
  /** Tries at once; when the lock is held, says so and waits up to `waitSeconds`. */
  const run = async (cmd: string[], timeoutSeconds: number): Promise<CommandResult> => {
    // /run/nixos exists on every booted NixOS; made here (as NixOS makes it, 0755) where it does not.
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 })
    rootsOnly(path)
    const flock = (wait: string[]) => [
      "flock",
      "--exclusive",
      ...wait,
      "--conflict-exit-code",
      `${LOCK_BUSY_CODE}`,
      path,
    ]
    let now = await runCommand([...flock(["--nonblock"]), ...cmd], timeoutSeconds)
    if (now.code === LOCK_BUSY_CODE) {
      // A switch runs as root; a lock held by anyone else is not a switch but a local user keeping the
      // node from healing (flock needs only read access). The lock moves to a file of its own: the
      // path is what switch-to-configuration locks, and the other user's hold stays on the old one.
      const id = lockId(path)
      const entries = locksOn(id)
      if (heldByUsersAlone(entries) && setAside(path, id)) {
        log.warn("the switch lock is held by a process that is not root's, not by a switch; replaced the lock file", {
          path,
          holders: entries.filter((e) => !e.waiting),
        })
        now = await runCommand([...flock(["--nonblock"]), ...cmd], timeoutSeconds)
      }
    }
    if (now.code !== LOCK_BUSY_CODE || waitSeconds === 0) return explain(now)
    log.info("another switch holds the lock (nixos-rebuild?); waiting for it", { path, waitSeconds })
    const waited = await runCommand([...flock(["--wait", `${waitSeconds}`]), ...cmd], timeoutSeconds + waitSeconds)
    if (waited.code !== LOCK_BUSY_CODE) log.info("switch lock free again", { path })
    return explain(waited)
  }
  return {
    path,
    waitSeconds,
    holding: (cmd, timeoutSeconds) => run(cmd, timeoutSeconds),
    awaitFree: () => run(["true"], 10),
  }
}

/**
 * The lock file readable by root alone: flock(2) needs only a descriptor opened for reading, so with
 * NixOS's 0644 any local user could hold the lock and keep every heal (and the boot check's rollback)
 * waiting. An existing file is tightened in place; a symbolic link there is not followed.
 */
function rootsOnly(path: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
  try {
    if ((fstatSync(fd).mode & 0o077) !== 0) fchmodSync(fd, 0o600)
  } finally {
    closeSync(fd)
  }
}

/**
 * Puts a fresh lock file (new inode, 0600) where the one held by local users was, in one rename. A
 * switch that began waiting on the old one meanwhile would get it once they let go, while the agent
 * holds the new one: the old file is then put back, and false says the agent must wait as for a switch.
 */
function setAside(path: string, id: string | null): boolean {
  const fresh = `${path}.${process.pid}`
  const kept = `${path}.held-by-user.${process.pid}`
  rmSync(kept, { force: true })
  linkSync(path, kept)
  closeSync(openSync(fresh, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600))
  renameSync(fresh, path)
  if (locksOn(id).some((e) => e.waiting && mayBeSwitch(e))) {
    renameSync(kept, path)
    return false
  }
  rmSync(kept, { force: true })
  return true
}

interface LockEntry {
  pid: number
  /** The process's real uid; UNREADABLE or NO_PROCESS when there is none to read. */
  uid: number
  /** Blocked waiting for the lock rather than holding it. */
  waiting: boolean
}

/** A uid that cannot be read (a process in another pid namespace): it may be a switch's. */
const UNREADABLE = -1
/**
 * A hold no process keeps open (its descriptor sits in a socket message, or a mapping): not a
 * switch's, which keeps its own descriptor open while it runs.
 */
const NO_PROCESS = -2

/** How /proc/locks names a file: MAJOR:MINOR:INODE, the device's numbers in hex; null if it is gone. */
function lockId(path: string): string | null {
  let file: { dev: number; ino: number }
  try {
    file = statSync(path)
  } catch {
    return null
  }
  return _idOf(file)
}

function _idOf(file: { dev: number; ino: number }): string {
  // Inode numbers alone repeat across filesystems (every tmpfs /run has its own).
  const major = ((file.dev >> 8) & 0xfff) | (Math.floor(file.dev / 2 ** 32) & ~0xfff)
  const minor = (file.dev & 0xff) | ((file.dev >> 12) & 0xfff00)
  return `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${file.ino}`
}

/** The flocks held on, and waited for on, the file `/proc/locks` names `id`. */
function locksOn(id: string | null): LockEntry[] {
  let locks: string
  try {
    locks = id === null ? "" : readFileSync("/proc/locks", "utf8")
  } catch {
    return []
  }
  const entries: LockEntry[] = []
  for (const line of locks.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 12345 00:1a:67890 0 EOF"; a waiter's line has "->" after the number.
    const f = line.trim().split(/\s+/)
    const waiting = f[1] === "->"
    const [type, , , pidText, file] = waiting ? f.slice(2) : f.slice(1)
    if (type !== "FLOCK" || file !== id) continue
    const pid = Number(pidText)
    // /proc/locks names the process that took a hold, which need not keep it: after `exec 9<FILE;
    // flock 9` flock(1) is gone at once (its pid may even be another process's by now), and the shell's
    // open descriptor holds the lock. A holder is then whoever has the file open.
    if (!waiting && pid > 0 && !_hasOpen(pid, file)) {
      const keepers = _openers(file)
      entries.push(...(keepers.length > 0 ? keepers : [{ pid, uid: NO_PROCESS }]).map((k) => ({ ...k, waiting })))
      continue
    }
    entries.push({ pid, uid: pid > 0 ? _uidOf(pid) : UNREADABLE, waiting })
  }
  return entries
}

/** A process's real uid, or UNREADABLE. */
function _uidOf(pid: number): number {
  try {
    return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? UNREADABLE)
  } catch {
    return UNREADABLE
  }
}

/** The file ids process `pid` has open (/proc/PID/fd); empty when it is gone. */
function _openFiles(pid: number | string): Set<string> {
  const ids = new Set<string>()
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return ids
  }
  for (const fd of fds) {
    try {
      ids.add(_idOf(statSync(`/proc/${pid}/fd/${fd}`)))
    } catch {}
  }
  return ids
}

const _hasOpen = (pid: number, id: string) => _openFiles(pid).has(id)

/** Every process that has the file `id` open, with its real uid (read only when a holder is gone). */
function _openers(id: string): { pid: number; uid: number }[] {
  const found: { pid: number; uid: number }[] = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    if (_openFiles(name).has(id)) found.push({ pid: Number(name), uid: _uidOf(Number(name)) })
  }
  return found
}

/** Who holds a flock on `path` now: each holder's pid and real uid. */
export function holdersOf(path: string): { pid: number; uid: number }[] {
  return locksOn(lockId(path))
    .filter((e) => !e.waiting)
    .map(({ pid, uid }) => ({ pid, uid }))
}

/**
 * Whether the lock is held by local users alone, none of them a switch: every holder is known and not
 * root, and nobody who may be a switch (root, or a process we cannot see) is waiting for it.
 */
function heldByUsersAlone(entries: LockEntry[]): boolean {
  return entries.some((e) => !e.waiting) && !entries.some(mayBeSwitch)
}

/**
 * A switch runs as root: so may any process whose uid is root's, or could not be read. A hold no
 * process keeps open is not a switch's.
 */
function mayBeSwitch(e: LockEntry): boolean {
  return e.uid === (process.getuid?.() ?? 0) || e.uid === UNREADABLE
}

/** " (pid 123, uid 0)": who holds it, for the report. */
function _held(path: string): string {
  const holders = holdersOf(path)
  const who = (h: { pid: number; uid: number }) =>
    h.uid === NO_PROCESS ? `pid ${h.pid}, gone, its descriptor open in no process` : `pid ${h.pid}, uid ${h.uid}`
  return holders.length === 0 ? "" : ` (${holders.map(who).join("; ")})`
}
