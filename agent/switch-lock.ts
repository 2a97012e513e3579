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
import { mkdirSync } from "node:fs"
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
          output: `${r.output}${r.output ? "\n" : ""}another switch (nixos-rebuild or switch-to-configuration) held ${path} for more than ${waitSeconds} s; this heal was skipped and will be retried`,
        }
      : r
  /** Tries at once; when the lock is held, says so and waits up to `waitSeconds`. */
  const run = async (cmd: string[], timeoutSeconds: number): Promise<CommandResult> => {
    // /run/nixos exists on every booted NixOS; made here (as NixOS makes it, 0755) where it does not.
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 })
    const flock = (wait: string[]) => [
      "flock",
      "--exclusive",
      ...wait,
      "--conflict-exit-code",
      `${LOCK_BUSY_CODE}`,
      path,
    ]
    const now = await runCommand([...flock(["--nonblock"]), ...cmd], timeoutSeconds)
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
