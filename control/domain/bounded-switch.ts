// Every switch-to-configuration Chimera runs on a node has one time bound, the activation timeout: a
// deploy's switch, and each switch back to an earlier generation (the watchdog's, a deploy's abort, a
// rollback's). A switch that never ends (a unit whose start hangs, a blocked activation script) would
// otherwise hold what waits for it for ever: the watchdog and the deploy behind it, or a rollback and
// the node's claim with it (node-claim.ts), so every later deploy and rollback of the node was refused.

/**
 * deploy-rs bounds its activation the same way (four minutes); five leave room for the services a
 * NixOS switch restarts.
 */
export const DEFAULT_ACTIVATION_TIMEOUT_SECONDS = 300
/** How long a switch stopped at the activation timeout has to end on SIGTERM before it is killed. */
export const ACTIVATION_KILL_GRACE_SECONDS = 10
/**
 * Beyond the bound, what a script with a bounded switch may take: setting the profile before it, the
 * grace a stopped switch has before SIGKILL, and the answer's way back.
 */
export const SWITCH_SLACK_SECONDS = ACTIVATION_KILL_GRACE_SECONDS + 60
/** Said (with the bound) on the switch's stderr, last, when it was stopped at the activation timeout. */
export const ACTIVATION_TIMED_OUT_SAYS = "switch-to-configuration did not finish within the activation timeout"

/**
 * Shell function `bounded_switch CLOSURE OUT ERR`: `CLOSURE/bin/switch-to-configuration switch`, its
 * output appended to the files OUT and ERR, under coreutils' `timeout`, which runs it in a process group
 * of its own and signals the whole group: what the switch started (a `systemctl start` that waits on a
 * hung unit) goes with it. Returns the switch's exit code; one still running at `seconds` is stopped,
 * says so on ERR, sets `stopped=1` and returns 124. A switch that fails on its own keeps its code and
 * words; one cut off is told apart by the time it took, as `timeout`'s 124 (or 137 after the SIGKILL) is
 * also what a switch itself may exit with. Under `set -e`, a failure ends the script with its code.
 */
export function boundedSwitchFn(seconds: number): string {
  return [
    "bounded_switch() {",
    "  t0=$(date +%s); rc=0; stopped=",
    `  timeout -k ${ACTIVATION_KILL_GRACE_SECONDS} ${seconds} "$1/bin/switch-to-configuration" switch >>"$2" 2>>"$3" || rc=$?`,
    `  if [ $rc -ne 0 ] && [ $(( $(date +%s) - t0 )) -ge ${seconds} ]; then`,
    `    stopped=1; echo "${ACTIVATION_TIMED_OUT_SAYS} (${seconds} s) and was stopped" >>"$3"; return 124`,
    "  fi",
    "  return $rc",
    "}",
  ].join("\n")
}

/** Whether a script's result is its switch stopped at the activation timeout (boundedSwitchFn). */
export const switchTimedOut = (res: { exitCode: number | null; stderr: string }) =>
  res.exitCode === 124 && res.stderr.includes(ACTIVATION_TIMED_OUT_SAYS)
