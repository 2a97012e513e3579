// The NixPort of the agent: every effect on the node's system goes through this interface, so the
// reconciler reads as the policy it is. The real implementation reads the three links with realpath,
// asks the store whether a closure is present, and runs the three commands of a heal, no others:
// `nix-store --realise`, `nix-env -p <profile> --set <closure>`, `<closure>/bin/switch-to-configuration
// switch`. Under systemd the switch runs in a transient unit (systemd-run), because activation may
// restart chimera-agent.service itself and must not die with it. Both the profile change and the switch
// respect NixOS's switch lock (switch-lock.ts), so a `nixos-rebuild` by hand and a heal never overlap.
import { lstat, realpath } from "node:fs/promises"
import { dirname, join } from "node:path"
import { MAX_DEPLOY_HOLD_SECONDS, type SystemLinks } from "../protocol/agent.ts"
import { StorePath } from "../protocol/ids.ts"
import { createLogger } from "../protocol/log.ts"
import { killProcessGroup } from "./run-command.ts"
import type { SwitchLock } from "./switch-lock.ts"

const log = createLogger("nix")

/** Output kept from a command: the contract caps report output at 64 KiB; the end says most. */
export const MAX_OUTPUT = 65_536

/**
 * How long each heal step may take before it is killed and the heal counts as failed (then retried
 * with backoff): a switch whose unit never finishes starting, or a stalled realise, must not leave the
 * node `healing` for ever and every later activation unacknowledged.
 */
export const STEP_TIMEOUT_SECONDS = { realise: 3600, setProfile: 300, switch: 900 } as const

export interface CommandResult {
  code: number
  /** stdout and stderr, interleaved as far as two pipes allow, capped to MAX_OUTPUT. */
  output: string
}

export interface SystemPaths {
  systemProfile: string
  currentSystem: string
  bootedSystem: string
}

export interface NixSystem {
  readonly paths: SystemPaths
  readLinks(): Promise<SystemLinks>
  inStore(closure: StorePath): Promise<boolean>
  realise(closure: StorePath): Promise<CommandResult>
  setProfile(closure: StorePath): Promise<CommandResult>
  switchTo(closure: StorePath): Promise<CommandResult>
  /**
   * Until when (epoch ms) a push deploy holds this node: `chimera deploy` writes the time to
   * <dir of current-system>/chimera/deploy-hold before it activates, and the agent neither reports nor
   * heals drift until then, so it does not undo a deploy before its confirmation (0 when none).
   */
  deployHoldUntil(): Promise<number>
}

export interface NixSystemOptions {
  /** Run switch-to-configuration through systemd-run; default: when the agent itself runs under systemd. */
  useSystemdRun?: boolean
  /** NixOS's switch lock, waited for before the profile changes and before the switch; none: not taken. */
  switchLock?: SwitchLock
}

export function createNixSystem(paths: SystemPaths, opts: NixSystemOptions = {}): NixSystem {
  const useSystemdRun = opts.useSystemdRun ?? _underSystemd()
  return {
    paths,
    async readLinks() {
      const [profile, current, booted] = await Promise.all([
        _resolve(paths.systemProfile),
        _resolve(paths.currentSystem),
        _resolve(paths.bootedSystem),
      ])
      return { profile, current, booted }
    },
    async inStore(closure) {
      try {
        await lstat(closure)
        return true
      } catch {
        return false
      }
    },
    async deployHoldUntil() {
      const text = await Bun.file(join(dirname(paths.currentSystem), "chimera/deploy-hold"))
        .text()
        .catch(() => "")
      const until = Number.parseInt(text.trim().split(/\s+/)[0] ?? "", 10) * 1000
      // A deploy holds a node for at most its confirm timeout (<= 1 h) plus a minute; a hold further out
      // is stale or forged and must not switch healing off for good.
      return Number.isFinite(until) && until <= Date.now() + MAX_DEPLOY_HOLD_SECONDS * 1000 ? until : 0
    },
    realise: (closure) => runCommand(["nix-store", "--realise", closure], STEP_TIMEOUT_SECONDS.realise),
    setProfile(closure) {
      const cmd = ["nix-env", "-p", paths.systemProfile, "--set", closure]
      return opts.switchLock
        ? opts.switchLock.holding(cmd, STEP_TIMEOUT_SECONDS.setProfile)
        : runCommand(cmd, STEP_TIMEOUT_SECONDS.setProfile)
    },
    async switchTo(closure) {
      // switch-to-configuration takes the lock itself and fails at once if it is held: wait for it here.
      if (opts.switchLock) {
        const free = await opts.switchLock.awaitFree()
        if (free.code !== 0) return free
      }
      const script = `${closure}/bin/switch-to-configuration`
      const limit = STEP_TIMEOUT_SECONDS.switch
      // Under systemd the unit gets the limit too: killing the waiting systemd-run would not stop it.
      const cmd = useSystemdRun
        ? [
            "systemd-run",
            "--wait",
            "--collect",
            "--pipe",
            "--quiet",
            "--service-type=exec",
            `--property=RuntimeMaxSec=${limit}`,
            "--",
            script,
            "switch",
          ]
        : [script, "switch"]
      return runCommand(cmd, limit + (useSystemdRun ? 10 : 0))
    },
  }
}

function _underSystemd(): boolean {
  return Boolean(process.env.INVOCATION_ID) && Bun.which("systemd-run") !== null
}

// A link resolves to the top-level store path it points into; anything else (no link, a dangling link,
// a path outside the store) counts as absent, which the drift check treats as drift.
async function _resolve(link: string): Promise<StorePath | null> {
  let target: string
  try {
    target = await realpath(link)
  } catch {
    return null
  }
  const top = target.split("/").slice(0, 4).join("/")
  const parsed = StorePath.safeParse(top)
  if (!parsed.success) log.warn("link does not point into the Nix store", { link, target })
  return parsed.success ? parsed.data : null
}

/**
 * Runs a command to completion, or until `timeoutSeconds` (then SIGKILL, and a failure that says so);
 * never throws (a missing binary is exit code 127 with a message).
 */
export async function runCommand(cmd: string[], timeoutSeconds?: number): Promise<CommandResult> {
  let proc: Bun.Subprocess<"ignore", "pipe", "pipe">
  let timedOut = false
  try {
    // Its own process group, so that a timeout takes its children too (they would hold the pipes open).
    proc = Bun.spawn(cmd, { env: process.env, stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true })
  } catch (err) {
    return { code: 127, output: `could not run ${cmd[0]}: ${(err as Error).message}` }
  }
  const timer =
    timeoutSeconds === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          killProcessGroup(proc)
        }, timeoutSeconds * 1000)
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ])
    const output = [stdout.trim(), stderr.trim()].filter(Boolean)
    if (timedOut) output.push(`[chimera: ${cmd[0]} killed after ${timeoutSeconds} s]`)
    return { code: timedOut ? 124 : code, output: capOutput(output.join("\n")) }
  } finally {
    clearTimeout(timer)
  }
}

export function capOutput(text: string, max = MAX_OUTPUT): string {
  if (text.length <= max) return text
  const marker = `[… ${text.length - max} characters cut …]\n`
  return marker + text.slice(text.length - (max - marker.length))
}
