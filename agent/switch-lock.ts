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
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
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
      const holders = holdersOf(path)
      const others = holders.filter((h) => h.uid !== (process.getuid?.() ?? 0))
      if (others.length > 0 && others.length === holders.length) {
        log.warn("the switch lock is held by a process that is not root's, not by a switch; replacing the lock file", {
          path,
          holders: others,
        })
        replaceLockFile(path)
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

/** A fresh lock file (new inode, 0600) put where the old one was, in one rename. */
function replaceLockFile(path: string): void {
  const fresh = `${path}.${process.pid}`
  closeSync(openSync(fresh, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600))
  renameSync(fresh, path)
}

/** Who holds a flock on `path` now, from /proc/locks: each holder's pid and real uid. */
export function holdersOf(path: string): { pid: number; uid: number }[] {
  let file: { dev: number; ino: number }
  let locks: string
  try {
    file = statSync(path)
    locks = readFileSync("/proc/locks", "utf8")
  } catch {
    return []
  }
  // /proc/locks names a file as MAJOR:MINOR:INODE, the device's numbers in hex: inode numbers alone
  // repeat across filesystems (every tmpfs /run has its own).
  const major = ((file.dev >> 8) & 0xfff) | (Math.floor(file.dev / 2 ** 32) & ~0xfff)
  const minor = (file.dev & 0xff) | ((file.dev >> 12) & 0xfff00)
  const id = `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${file.ino}`
  const holders: { pid: number; uid: number }[] = []
  for (const line of locks.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 12345 00:1a:67890 0 EOF" (a blocked waiter's line has "->" in it).
    const f = line.trim().split(/\s+/)
    if (f[1] !== "FLOCK" || f.includes("->")) continue
    if (f[5] !== id) continue
    const pid = Number(f[4])
    let uid = -1
    try {
      uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? -1)
    } catch {}
    holders.push({ pid, uid })
  }
  return holders
}

/** " (pid 123, uid 0)": who holds it, for the report. */
function _held(path: string): string {
  const holders = holdersOf(path)
  return holders.length === 0 ? "" : ` (${holders.map((h) => `pid ${h.pid}, uid ${h.uid}`).join("; ")})`
}
