// The shell scripts a deploy runs on a node, one SSH command each. Magic rollback works like this
// (deploy-rs's idea, done per node and in parallel): before the new closure is activated, the node
// arms a detached watchdog (`setsid -f`, so it survives the SSH session) that sleeps for the confirm
// timeout and then, unless a confirm file exists, switches the profile back to the previous generation
// and activates it. The control plane confirms over a *new* SSH connection once the health checks
// pass: if the new system broke the node's networking or sshd, the confirmation cannot arrive and the
// node rolls itself back. State lives in /run/chimera (tmpfs: per boot, per node), except one marker
// on disk (protocol/unconfirmed-deploy.ts) that lets the node's agent roll back a system deploy the
// node rebooted into before it was confirmed, when the watchdog died with the old boot.
import { MAX_DEPLOY_HOLD_SECONDS } from "../../protocol/agent.ts"
import type { StorePath } from "../../protocol/ids.ts"
import { BOOT_ID_FILE, UNCONFIRMED_DEPLOY_MARKER } from "../../protocol/unconfirmed-deploy.ts"
import {
  ACTIVATION_KILL_GRACE_SECONDS,
  boundedSwitchFn,
  DEFAULT_ACTIVATION_TIMEOUT_SECONDS,
  SWITCH_SLACK_SECONDS,
} from "./bounded-switch.ts"
import { CLAIM_NODE, NO_ROOM_FN, ROLLBACK_CLAIM_PREFIX, RUN_DIR, STATE, UNDECIDED_FN } from "./node-claim.ts"

export const SYSTEM_PROFILE = "/nix/var/nix/profiles/system"
/** Every deployed closure is also recorded as a generation of this profile. */
export const CHIMERA_PROFILE = "/nix/var/nix/profiles/chimera"
/** While this file names a time to come, an agent on the node neither reports nor heals drift. */
export const DEPLOY_HOLD = "/run/chimera/deploy-hold"

/**
 * Shell that makes the deploy hold stand until `seconds` from now, for `idExpr` (a shell word). The file
 * is written aside and renamed into place: `>` truncates it first, and an agent reading it in that
 * instant would find no hold and heal a deploy or rollback away mid-way. Two commands, not `a && b`:
 * under `set -e` a failing `a` in an AND list does not stop the script, which would then switch unheld.
 */
export const writeHold = (seconds: number, idExpr: string) =>
  `echo "$(( $(date +%s) + ${seconds} )) ${idExpr}" > "${DEPLOY_HOLD}.$$"; mv -f "${DEPLOY_HOLD}.$$" "${DEPLOY_HOLD}"`

/** An abort that could not claim the decision at all (no room) says so, and that the watchdog will. */
export const ABORT_NO_CLAIM_SAYS = "cannot claim the rollback on the node"
/** Says why `$D/decided` could not be made when it is not there: no room under RUN_DIR, as a rule. */
const NO_DECISION = `$(no_room ${RUN_DIR} 1 4 || echo "$D/decided could not be made")`
/**
 * Said when the deploy's directory is gone: /run is a tmpfs, so the node restarted since the activation,
 * and the watchdog went with it. A system deploy's marker is on disk, and the node's agent rolls an
 * unconfirmed deploy back when it starts (agent/boot-check.ts). Not a full /run, nor the watchdog's.
 */
const restarted = (isSystem: boolean) =>
  `the node has no record of this deploy in ${STATE} (it restarted since the activation${isSystem ? "; its agent rolls an unconfirmed deploy back when it starts" : ""})`

/** Removes the unconfirmed-deploy marker if it is this deploy's ($ID), the deploy now being decided. */
const CLEAR_MARKER = `M=${UNCONFIRMED_DEPLOY_MARKER}; grep -qx "deploy=$ID" "$M" 2>/dev/null && rm -f "$M"; true`
/**
 * Lifts the deploy hold if it is this deploy's ($ID), once the deploy is rolled back (or could not be):
 * the node is back on what its agent has as desired, and a hold left standing kept the agent from
 * healing it for the rest of the activation's bound, minutes after a switch that failed at once.
 */
const LIFT_HOLD = `[ "$(cut -d" " -f2 "${DEPLOY_HOLD}" 2>/dev/null)" = "$ID" ] && rm -f "${DEPLOY_HOLD}"; true`
/** For a script the activation writes with an unquoted here-document: its variables expand when it runs. */
const later = (script: string) => script.replaceAll("$", "\\$")
/**
 * True when the profile, and for a system the running system, are already on `prev`: an activation
 * that failed before it changed anything (a full disk under the profiles) has nothing to switch back,
 * and switching back would fail the same way, for a node that never left its generation.
 */
const onPrevious = (profile: string, prev: string, isSystem: boolean) =>
  `{ [ "$(readlink -f ${profile})" = ${prev} ]${isSystem ? ` && [ "$(readlink -f /run/current-system)" = ${prev} ]` : ""}; }`

/** POSIX single-quoting: the only safe way to pass an arbitrary string to a remote shell. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`
}

export interface ActivationScript {
  deployId: string
  closure: StorePath
  /** Set the system profile and run switch-to-configuration (a NixOS system closure). */
  isSystem: boolean
  confirmTimeoutSeconds: number
  /** How long switch-to-configuration may run before it is stopped and the deploy rolled back. */
  activationTimeoutSeconds?: number
}

/** Left in the deploy's directory on the node when its switch was stopped at the activation timeout. */
const ACTIVATION_TIMED_OUT = "activation-timed-out"

/**
 * Arms the watchdog, then activates. Prints `previous <gen> <path>` first so the caller knows where
 * a rollback goes (gen is empty on a node with no generation yet: nothing to roll back to).
 *
 * Exactly one of the watchdog, confirm and abort decides a deploy: each first claims it with
 * `mkdir $D/decided`, which is atomic, and whoever finds it taken stands down. The watchdog's confirm
 * countdown starts only when the activation has finished (`$D/activated`), so a slow switch does not
 * eat the confirm window; if the activating shell dies without finishing (a failed switch, a dropped
 * SSH session), the watchdog rolls back at once.
 *
 * Once sent, the activation runs to its end whatever becomes of the caller. When the SSH client goes
 * (Ctrl-C, a dropped laptop), sshd leaves the command running but closes its pipes, and the next line
 * switch-to-configuration wrote to stderr killed it with SIGPIPE half way through the switch (units
 * stopped and not started again), after which the watchdog rolled back at once. So everything the
 * script and what it runs print goes to files in $D, relayed to stdout and stderr once it is over;
 * the watchdog then rolls back an unconfirmed deploy when the confirm timeout passes, as for any other.
 *
 * The switch may take `activationTimeoutSeconds` (bounded-switch.ts): one still running then is
 * stopped, the script exits 124 with a line saying so on stderr, and the watchdog rolls back at once.
 * The watchdog's switch back has the same bound: cut off, its outcome says so.
 */
export function activateScript(a: ActivationScript): string {
  const profile = a.isSystem ? SYSTEM_PROFILE : CHIMERA_PROFILE
  const dir = `${STATE}/${a.deployId}`
  const activation = a.activationTimeoutSeconds ?? DEFAULT_ACTIVATION_TIMEOUT_SECONDS
  return [
    "set -eu",
    "umask 077",
    `P=${shq(profile)}; NEW=${shq(a.closure)}; D=${shq(dir)}; ID=${shq(a.deployId)}`,
    // Refused, before anything changes, while another deploy or rollback is undecided here (node-claim.ts).
    CLAIM_NODE,
    'O="$D/activation.out"; E="$D/activation.err"; : >"$O"; : >"$E"',
    // Relayed however the script ends: a failed switch's output is the caller's error message.
    `trap 'touch "$D/ended"; cat "$O"; cat "$E" >&2' EXIT`,
    // An agent on the node must not heal the deploy away before it is confirmed and the control plane
    // has the new desired closure: it honours this hold (agent/nix-system.ts) until it expires. This one
    // lasts while the switch may run; the confirm window's is written once it has ended.
    writeHold(Math.min(activation + ACTIVATION_KILL_GRACE_SECONDS + 60, MAX_DEPLOY_HOLD_SECONDS), "$ID"),
    'prev_path=$(readlink -f "$P" 2>/dev/null || true)',
    `prev_gen=$(readlink "$P" 2>/dev/null | sed -n 's/^.*-\\([0-9][0-9]*\\)-link$/\\1/p' || true)`,
    'echo "previous $prev_gen $prev_path" >>"$O"',
    'if [ -n "$prev_gen" ]; then',
    // $$ is this activating shell: the watchdog follows it to know when the activation is over.
    // Its first line is written with this shell's values (A: this activating shell); the rest runs as is.
    `  cat > "$D/watchdog" <<EOF
D="$D"; P="$P"; A=$$; prev_gen="$prev_gen"; prev_path="$prev_path"; ID=${shq(a.deployId)}
${later(watchdogBody(a, activation))}
EOF`,
    '  setsid -f sh "$D/watchdog" </dev/null >>"$D/watchdog.log" 2>&1',
    // On disk, written durably before the switch: a reboot in the confirm window takes the watchdog
    // with it, and the node's agent then rolls back at boot instead (agent/boot-check.ts).
    ...(a.isSystem
      ? [
          `  M=${UNCONFIRMED_DEPLOY_MARKER}; mkdir -p -m 700 "$(dirname "$M")"`,
          `  printf 'boot_id=%s\\ndeploy=%s\\nunconfirmed=%s\\nprevious=%s\\n' "$(cat ${BOOT_ID_FILE})" "$ID" "$NEW" "$prev_path" > "$M.tmp"`,
          '  sync "$M.tmp" 2>/dev/null || sync; mv "$M.tmp" "$M"; sync "$(dirname "$M")" 2>/dev/null || sync',
        ]
      : []),
    "fi",
    // Record every closure in the Chimera profile, then activate.
    ...(a.isSystem ? [`nix-env -p ${shq(CHIMERA_PROFILE)} --set "$NEW" >/dev/null 2>&1 || true`] : []),
    'nix-env -p "$P" --set "$NEW" >>"$O" 2>>"$E"',
    ...(a.isSystem
      ? [
          boundedSwitchFn(activation),
          `bounded_switch "$NEW" "$O" "$E" || { rc=$?; [ -z "$stopped" ] || touch "$D/${ACTIVATION_TIMED_OUT}"; exit $rc; }`,
        ]
      : []),
    'touch "$D/activated"',
    // The confirm window starts now (the watchdog's countdown too), however long the switch took.
    writeHold(Math.min(a.confirmTimeoutSeconds + 60, MAX_DEPLOY_HOLD_SECONDS), "$ID"),
    'echo activated >>"$O"',
  ].join("\n")
}

/**
 * The watchdog, as it runs (its variables set by its first line): it waits for the activation to end,
 * then for the confirm window, claims the decision and switches back to the previous generation, the
 * switch bounded as the activation's was. Its switch's output is in its log; a switch back cut off at
 * the bound is said in its outcome, which an abort waiting for it relays.
 */
function watchdogBody(a: ActivationScript, activation: number): string {
  const switchBack = a.isSystem ? ' && bounded_switch "$prev_path" "$D/watchdog.log" "$D/watchdog.log"' : ""
  return [
    'echo $$ > "$D/watchdog.pid"',
    'while [ ! -e "$D/activated" ] && kill -0 "$A" 2>/dev/null; do sleep 1; done',
    `[ -e "$D/activated" ] && sleep ${a.confirmTimeoutSeconds}`,
    // A failed claim is another's only if the claim is there: with no inode left for it under /run, the
    // watchdog waits for room (the node stays undecided, later deploys wait) rather than stand down.
    'until mkdir "$D/decided" 2>/dev/null; do { [ -d "$D" ] && [ ! -e "$D/decided" ]; } || exit 0; sleep 2; done',
    ...(a.isSystem ? [boundedSwitchFn(activation)] : []),
    "stopped=",
    `if ${onPrevious('"$P"', '"$prev_path"', a.isSystem)} || { nix-env -p "$P" --switch-generation "$prev_gen"${switchBack}; }; then echo rolled-back > "$D/outcome"; ${CLEAR_MARKER}`,
    'elif [ -n "$stopped" ]; then echo "rollback-failed: $(tail -n 1 "$D/watchdog.log")" > "$D/outcome"',
    'else echo rollback-failed > "$D/outcome"; fi',
    LIFT_HOLD,
  ].join("\n")
}

/**
 * Confirms a deploy by claiming its decision, so the watchdog stands down. Idempotent: a second
 * confirm (after an answer lost in transit) finds its own claim. Prints what the node now runs.
 */
export function confirmScript(deployId: string, isSystem: boolean): string {
  const dir = `${STATE}/${deployId}`
  return [
    "set -eu",
    `D=${shq(dir)}; ID=${shq(deployId)}`,
    NO_ROOM_FN,
    'if mkdir "$D/decided" 2>/dev/null; then touch "$D/confirmed"',
    // Too late as when the watchdog decided: the agent's boot check has, or will at its start.
    `elif [ ! -d "$D" ]; then echo "too late: ${restarted(isSystem)}"; exit ${isSystem ? 3 : 4}`,
    `elif [ ! -e "$D/decided" ]; then echo "cannot confirm: ${NO_DECISION}"; exit 4`,
    'elif [ ! -e "$D/confirmed" ]; then echo "too late: the node already decided ($(cat "$D/outcome" 2>/dev/null || echo rolling back))"; exit 3',
    "fi",
    CLEAR_MARKER,
    `readlink -f ${isSystem ? "/run/current-system" : shq(CHIMERA_PROFILE)}`,
  ].join("\n")
}

/**
 * Rolls back at once (a failed health check or activation). If the watchdog has already claimed the
 * deploy, waits for its outcome instead of switching a second time. A rollback that fails gives the
 * claim back, so the watchdog can still try when its time comes.
 *
 * Like the activation (activateScript says why), it runs to its end whatever becomes of the caller: the
 * switch back writes to a file, relayed once it is over. Killed half way, it left the profile on the
 * previous generation and the running system on the new one until the watchdog's time. The switch back
 * has the activation's bound, as the watchdog's has, which bounds the wait for the watchdog's outcome.
 */
export function abortScript(
  deployId: string,
  previous: { generation: number; path: StorePath },
  isSystem: boolean,
  activationTimeoutSeconds = DEFAULT_ACTIVATION_TIMEOUT_SECONDS,
): string {
  const profile = isSystem ? SYSTEM_PROFILE : CHIMERA_PROFILE
  const dir = `${STATE}/${deployId}`
  const switchBack = isSystem ? ` && bounded_switch ${shq(previous.path)} "$L" "$L"` : ""
  return [
    "set -u",
    `D=${shq(dir)}; ID=${shq(deployId)}; L="$D/abort.log"`,
    ...(isSystem ? [boundedSwitchFn(activationTimeoutSeconds)] : []),
    NO_ROOM_FN,
    'if ! mkdir "$D/decided" 2>/dev/null; then',
    `  [ -d "$D" ] || { echo "${ABORT_NO_CLAIM_SAYS}: ${restarted(isSystem)}; nothing was switched back here" >&2; echo "rollback failed" >&2; exit 1; }`,
    // Not the watchdog's claim but none at all: said at once, the node left as it is for the watchdog.
    `  [ -e "$D/decided" ] || { echo "${ABORT_NO_CLAIM_SAYS}: ${NO_DECISION}; nothing was switched back, and the node's watchdog does it once there is room" >&2; echo "rollback failed" >&2; exit 1; }`,
    `  i=0; while [ ! -e "$D/outcome" ] && [ $i -lt ${switchBackSeconds(activationTimeoutSeconds)} ]; do sleep 1; i=$((i+1)); done`,
    '  outcome=$(cat "$D/outcome" 2>/dev/null || echo "no outcome yet")',
    '  echo "the watchdog decided: $outcome"; [ "$outcome" = rolled-back ]; exit',
    "fi",
    '(umask 077; : >"$L")',
    `if ${onPrevious(shq(profile), shq(previous.path), isSystem)}; then echo unchanged >&2`,
    `elif ! { nix-env -p ${shq(profile)} --switch-generation ${previous.generation}${switchBack}; } >>"$L" 2>&1; then`,
    '  rmdir "$D/decided"; cat "$L" >&2; echo "rollback failed" >&2; exit 1',
    "fi",
    `echo rolled-back > "$D/outcome"; ${CLEAR_MARKER}; ${LIFT_HOLD}; cat "$L" >&2; echo rolled-back`,
  ].join("\n")
}

/**
 * The longest a switch back may take on the node, the profile's move and the stopped switch's grace
 * included: an abort waits this long for the watchdog's, a rollback holds the agent off this long.
 */
export const switchBackSeconds = (activationTimeoutSeconds: number) => activationTimeoutSeconds + SWITCH_SLACK_SECONDS
/** How long the hold stands after the switch, for the control plane to give the agent the new closure. */
export const ROLLBACK_PUBLISH_SECONDS = 60

/**
 * Rolls a profile back one generation, or to GEN, and activates what it now points at. An agent on
 * the node would heal a rollback straight back to its desired closure, so the script holds it off
 * (the deploy hold) for the switch and for ROLLBACK_PUBLISH_SECONDS after, while the caller makes the
 * rolled-back closure the node's desired one; a rollback that fails lifts its own hold at once.
 *
 * Like the activation (activateScript says why), it runs to its end whatever becomes of the caller:
 * nix-env's and the switch's output go to a file on the node, relayed to stderr once they are over.
 * Killed half way, it left the profile moved back, the running system not, and the hold lifted for the
 * agent to heal forward. Its switch has the activation's bound (bounded-switch.ts): a hung one held the
 * node's claim, and so every later deploy and rollback of it, for ever; stopped, the script exits 124
 * saying so, with the profile moved back and the running system part way.
 */
export function rollbackScript(
  generation: number | null,
  profile = SYSTEM_PROFILE,
  activationTimeoutSeconds = DEFAULT_ACTIVATION_TIMEOUT_SECONDS,
): string {
  const move = generation === null ? "--rollback" : `--switch-generation ${generation}`
  return [
    "set -eu",
    `P=${shq(profile)}; H=${shq(DEPLOY_HOLD)}; ID=${ROLLBACK_CLAIM_PREFIX}$$; L="$H.$$.log"`,
    // Refused while a deploy is activating or unconfirmed here, or another rollback runs (node-claim.ts).
    CLAIM_NODE,
    '(umask 077; : >"$L")',
    // As far out as the agent honours at most: past it, the agent ignores the hold and heals mid-switch.
    // The publishing minute is written again once the switch has ended.
    writeHold(
      Math.min(switchBackSeconds(activationTimeoutSeconds) + ROLLBACK_PUBLISH_SECONDS, MAX_DEPLOY_HOLD_SECONDS),
      "$ID",
    ),
    // Only our own hold is lifted: a deploy that started meanwhile keeps its own.
    `trap 'touch "$C/ended"; [ "$(cut -d" " -f2 "$H" 2>/dev/null)" = "$ID" ] && rm -f "$H"; cat "$L" >&2; rm -f "$L"' EXIT`,
    `nix-env -p "$P" ${move} 2>>"$L"`,
    'now=$(readlink -f "$P")',
    boundedSwitchFn(activationTimeoutSeconds),
    'if [ -x "$now/bin/switch-to-configuration" ]; then bounded_switch "$now" /dev/null "$L"; fi',
    "trap - EXIT",
    'touch "$C/ended"',
    writeHold(ROLLBACK_PUBLISH_SECONDS, "$ID"),
    'cat "$L" >&2 || true; rm -f "$L"',
    `echo "generation $(readlink "$P" | sed -n 's/^.*-\\([0-9][0-9]*\\)-link$/\\1/p') $now"`,
  ].join("\n")
}

/**
 * `nix-env --list-generations` with each generation's store path and time: `<n> <epoch> <path> [(current)]`.
 * The time is the link's mtime in seconds, which is where nix-env reads it too: nix-env prints it in the
 * node's local time zone without saying which, so its date and time columns are left unread.
 */
export function generationsScript(profile = SYSTEM_PROFILE): string {
  return [
    "set -eu",
    `P=${shq(profile)}`,
    'nix-env -p "$P" --list-generations | while read -r n d t cur; do',
    '  echo "$n $(stat -c %Y "$P-$n-link") $(readlink -f "$P-$n-link") $cur"',
    "done",
  ].join("\n")
}

/**
 * Waits, up to `seconds`, while an earlier deploy on the node is under way or activated and undecided,
 * or a rollback runs (node-claim.ts's `undecided`), then prints the ids of any still so. A deploy made
 * meanwhile would find the node already on that deploy's closure and call it up to date, and the
 * watchdog would roll it back a moment later; or take the unconfirmed generation for the one to roll
 * back to. With `seconds` 0, only says which there are.
 */
export function undecidedDeploysScript(seconds: number): string {
  return [
    UNDECIDED_FN,
    "i=0",
    `while [ -n "$(undecided)" ] && [ $i -lt ${seconds} ]; do sleep 1; i=$((i+1)); done`,
    "undecided",
  ].join("\n")
}

/** Which of `paths` the node lacks (to size what a copy must send). Paths come on stdin. */
export const MISSING_PATHS_SCRIPT = "xargs -r nix-store --check-validity --print-invalid 2>/dev/null || true"
