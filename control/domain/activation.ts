// The shell scripts a deploy runs on a node, one SSH command each. Magic rollback works like this
// (deploy-rs's idea, done per node and in parallel): before the new closure is activated, the node
// arms a detached watchdog (`setsid -f`, so it survives the SSH session) that sleeps for the confirm
// timeout and then, unless a confirm file exists, switches the profile back to the previous generation
// and activates it. The control plane confirms over a *new* SSH connection once the health checks
// pass: if the new system broke the node's networking or sshd, the confirmation cannot arrive and the
// node rolls itself back. State lives in /run/chimera (tmpfs: per boot, per node).
import type { StorePath } from "../../protocol/ids.ts"

export const SYSTEM_PROFILE = "/nix/var/nix/profiles/system"
/** Every deployed closure is also recorded as a generation of this profile. */
export const CHIMERA_PROFILE = "/nix/var/nix/profiles/chimera"
const STATE = "/run/chimera/deploys"

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
}

/**
 * Arms the watchdog, then activates. Prints `previous <gen> <path>` first so the caller knows where
 * a rollback goes (gen is empty on a node with no generation yet: nothing to roll back to).
 */
export function activateScript(a: ActivationScript): string {
  const profile = a.isSystem ? SYSTEM_PROFILE : CHIMERA_PROFILE
  const dir = `${STATE}/${a.deployId}`
  const switchTo = (path: string) => (a.isSystem ? ` && ${path}/bin/switch-to-configuration switch` : "")
  return [
    "set -eu",
    `P=${shq(profile)}; NEW=${shq(a.closure)}; D=${shq(dir)}`,
    'mkdir -p "$D"',
    // An agent on the node must not heal the deploy away before it is confirmed and the control plane
    // has the new desired closure: it honours this hold (agent/nix-system.ts) until it expires.
    `echo "$(( $(date +%s) + ${a.confirmTimeoutSeconds + 60} )) ${a.deployId}" > /run/chimera/deploy-hold`,
    'prev_path=$(readlink -f "$P" 2>/dev/null || true)',
    `prev_gen=$(readlink "$P" 2>/dev/null | sed -n 's/^.*-\\([0-9][0-9]*\\)-link$/\\1/p' || true)`,
    'echo "previous $prev_gen $prev_path"',
    'if [ -n "$prev_gen" ]; then',
    `  cat > "$D/watchdog" <<EOF
sleep ${a.confirmTimeoutSeconds}
[ -e "$D/confirmed" ] && exit 0
[ -e "$D/cancelled" ] && exit 0
nix-env -p "$P" --switch-generation "$prev_gen"${switchTo('"$prev_path"')} && echo rolled-back > "$D/outcome"
EOF`,
    '  setsid -f sh "$D/watchdog" </dev/null >"$D/watchdog.log" 2>&1',
    "fi",
    // Record every closure in the Chimera profile, then activate.
    ...(a.isSystem ? [`nix-env -p ${shq(CHIMERA_PROFILE)} --set "$NEW" >/dev/null 2>&1 || true`] : []),
    'nix-env -p "$P" --set "$NEW"',
    ...(a.isSystem ? ['"$NEW/bin/switch-to-configuration" switch'] : []),
    "echo activated",
  ].join("\n")
}

/** Confirms a deploy: the watchdog will find the file and stand down. Prints what the node runs. */
export function confirmScript(deployId: string, isSystem: boolean): string {
  const dir = `${STATE}/${deployId}`
  return [
    "set -eu",
    `D=${shq(dir)}`,
    `[ -e "$D/outcome" ] && { echo "too late: $(cat "$D/outcome")"; exit 3; }`,
    'touch "$D/confirmed"',
    `readlink -f ${isSystem ? "/run/current-system" : shq(CHIMERA_PROFILE)}`,
  ].join("\n")
}

/** Rolls back at once (a failed health check): cancels the watchdog, then switches to the previous generation. */
export function abortScript(
  deployId: string,
  previous: { generation: number; path: StorePath },
  isSystem: boolean,
): string {
  const profile = isSystem ? SYSTEM_PROFILE : CHIMERA_PROFILE
  const dir = `${STATE}/${deployId}`
  return [
    "set -eu",
    `D=${shq(dir)}`,
    'touch "$D/cancelled"',
    `nix-env -p ${shq(profile)} --switch-generation ${previous.generation}`,
    ...(isSystem ? [`${shq(previous.path)}/bin/switch-to-configuration switch`] : []),
    'echo rolled-back > "$D/outcome"',
  ].join("\n")
}

/** Rolls a profile back one generation, or to GEN, and activates what it now points at. */
export function rollbackScript(generation: number | null, profile = SYSTEM_PROFILE): string {
  const move = generation === null ? "--rollback" : `--switch-generation ${generation}`
  return [
    "set -eu",
    `P=${shq(profile)}`,
    `nix-env -p "$P" ${move}`,
    'now=$(readlink -f "$P")',
    '[ -x "$now/bin/switch-to-configuration" ] && "$now/bin/switch-to-configuration" switch >/dev/null',
    `echo "generation $(readlink "$P" | sed -n 's/^.*-\\([0-9][0-9]*\\)-link$/\\1/p') $now"`,
  ].join("\n")
}

/** `nix-env --list-generations` with each generation's store path: `<n> <date> <time> <path> [(current)]`. */
export function generationsScript(profile = SYSTEM_PROFILE): string {
  return [
    "set -eu",
    `P=${shq(profile)}`,
    'nix-env -p "$P" --list-generations | while read -r n d t cur; do',
    '  echo "$n $d $t $(readlink -f "$P-$n-link") $cur"',
    "done",
  ].join("\n")
}

/** Which of `paths` the node lacks (to size what a copy must send). Paths come on stdin. */
export const MISSING_PATHS_SCRIPT = "xargs -r nix-store --check-validity --print-invalid 2>/dev/null || true"
