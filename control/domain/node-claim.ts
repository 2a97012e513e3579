// One switch at a time on a node. A deploy's plan waits for an earlier undecided deploy, but two
// deploys that plan at the same moment (two operators, two CLIs) both found none, both switched, and
// each armed a watchdog over the other's generation: both were recorded deployed, and the node ran
// whichever switched last while the control plane kept whichever published last. A rollback run during
// a deploy's confirm window did the same. So each activation and each rollback claims the node first:
// under a lock (flock on a file in /run/chimera), it looks for a deploy or rollback still undecided
// there and, finding one, refuses (BUSY_EXIT) before it changes anything; finding none, it marks its
// own directory as under way, which the next one sees, until its script ends.

/** Per boot, per node: each deploy's directory, and a rollback's while it runs. */
export const STATE = "/run/chimera/deploys"
/** Where the claims, the deploys' state and the deploy hold live (a tmpfs: /run). */
export const RUN_DIR = "/run/chimera"

/**
 * Shell function `no_room DIR INODES KIB`: says which DIR's filesystem has too few of, inodes or space
 * (`no inodes left on DIR (N free)`), and succeeds; fails when it has both. /run is a small tmpfs; out of
 * inodes or space there, the claim, the hold and the decision a deploy records fail to be written, and
 * are to be named so, not taken for another deploy's (a failed `mkdir decided` read as the watchdog's).
 * A filesystem that counts no inodes, or no blocks, at all (statfs's total 0: a tmpfs mounted with
 * nr_inodes=0 or size=0, btrfs's inodes) has no such limit, not none left: its 0 free is no refusal.
 */
export const NO_ROOM_FN = [
  "no_room() {",
  '  set -- "$1" "$2" "$3" $(stat -f -c "%c %d %b %f %S" "$1" 2>/dev/null || stat -f -c "%c %d %b %f %S" "$(dirname "$1")" 2>/dev/null)',
  "  [ $# -eq 8 ] || return 1",
  '  if [ "$4" -gt 0 ] && [ "$5" -lt "$2" ]; then echo "no inodes left on $1 ($5 free)"',
  '  elif [ "$6" -gt 0 ] && [ $(( $7 * $8 / 1024 )) -lt "$3" ]; then echo "no space left on $1 ($(( $7 * $8 / 1024 )) KiB free)"',
  "  else return 1; fi",
  "}",
].join("\n")

/**
 * What a claim wants free under RUN_DIR: a deploy writes about fifteen files there (its directory,
 * output, watchdog, decision, the hold), a few KiB unless its switch talks a lot. Short of it, the claim
 * is refused before anything changes, rather than a write failing half way.
 */
const ROOM = { inodes: 32, kib: 256 }

/** How a rollback names its claim: `rollback-` and its script's pid on the node; a deploy's is its id. */
export const ROLLBACK_CLAIM_PREFIX = "rollback-"

/**
 * The claims `undecided` printed, in words: a deploy is under way or waits for its confirmation (its
 * watchdog rolls it back otherwise), while a rollback has neither, and holds the node until it ends.
 */
export function undecidedText(ids: string[]): string {
  const rollbacks = ids.filter((id) => id.startsWith(ROLLBACK_CLAIM_PREFIX))
  const deploys = ids.filter((id) => !id.startsWith(ROLLBACK_CLAIM_PREFIX))
  return [
    deploys.length > 0 &&
      `deploy ${deploys.join(", ")}: under way here or not confirmed, until it is confirmed or its watchdog rolls it back`,
    rollbacks.length > 0 && `a rollback switching here (${rollbacks.join(", ")}), until it ends`,
  ]
    .filter(Boolean)
    .join("; and ")
}

/** The exit code of an activation or rollback that found another one undecided on the node. */
export const BUSY_EXIT = 75

/** Said on stderr, with the ids, by an activation or rollback refused for another one (BUSY_EXIT). */
export const BUSY_SAYS = "another deploy or rollback is under way or unconfirmed on this node"

/**
 * Whether an activation or rollback was refused by the claim (BUSY_EXIT with BUSY_SAYS): the exit code
 * alone is not enough, as what the script runs (switch-to-configuration, nix-env) may exit 75 too, after
 * it changed the node.
 */
export const refusedBusy = (res: { exitCode: number | null; stderr: string }) =>
  res.exitCode === BUSY_EXIT && res.stderr.includes(BUSY_SAYS)

/**
 * Shell function `undecided [SKIP]`: the ids of deploys and rollbacks under way or undecided on the
 * node, SKIP aside. Under way: its script still runs (`under-way.pid` alive, `ended` not yet written
 * by its exit trap). Undecided: activated and its watchdog alive, neither confirmed nor rolled back.
 * Undecided ends with `confirmed` or `outcome`, not with `decided`: a watchdog or abort claims
 * `decided` before its switch back and writes `outcome` after it. The watchdog's pid counts only while
 * it is still that watchdog (its command line names it): one killed undecided leaves a pid another
 * process may take later. For the same reason a script under way is recorded as its pid and that
 * process's start time (`/proc/PID/stat`'s 22nd field), and counts only while both match: a script
 * SIGKILLed before its exit trap wrote `ended` would otherwise keep the node busy for as long as
 * whatever process later took its pid lives (a daemon: for ever). A pid alone (written by a version
 * before this one) is taken at its word.
 */
export const UNDECIDED_FN = [
  `S=${STATE}`,
  // After the ") " that ends the command's name (which may hold spaces), field 22 is the 20th.
  "started() { sed 's/.*) //' \"/proc/$1/stat\" 2>/dev/null | cut -d' ' -f20; }",
  'under_way() { [ -f "$1/under-way.pid" ] && [ ! -e "$1/ended" ] && read -r p t < "$1/under-way.pid" && kill -0 "$p" 2>/dev/null && { [ -z "$t" ] || [ "$(started "$p")" = "$t" ]; }; }',
  'watched() { [ -f "$1/watchdog.pid" ] && [ ! -e "$1/confirmed" ] && [ ! -e "$1/outcome" ] && p=$(cat "$1/watchdog.pid") && kill -0 "$p" 2>/dev/null && grep -qF "$1"watchdog "/proc/$p/cmdline" 2>/dev/null; }',
  'undecided() { for d in "$S"/*/; do [ $# -gt 0 ] && [ "$d" = "$S/$1/" ] && continue; if under_way "$d" || watched "$d"; then basename "$d"; fi; done; true; }',
].join("\n")

/**
 * Shell that claims the node for `$ID` (set before), or exits BUSY_EXIT naming what holds it. Leaves
 * `$C` as its directory; the caller's exit trap must `touch "$C/ended"`. The lock is held only for the
 * look and the mark, so a claim never waits on another's switch.
 */
export const CLAIM_NODE = [
  UNDECIDED_FN,
  NO_ROOM_FN,
  `if room=$(no_room ${RUN_DIR} ${ROOM.inodes} ${ROOM.kib}); then echo "cannot claim the node: $room; nothing was changed" >&2; exit 1; fi`,
  'mkdir -p "$S"; C="$S/$ID"',
  'exec 9>"$S/.lock"; flock 9',
  'busy=$(undecided "$ID")',
  `if [ -n "$busy" ]; then echo "${BUSY_SAYS}: $(echo $busy)" >&2; exit ${BUSY_EXIT}; fi`,
  // An `ended` left by an earlier script of the same name (a rollback's is named by its pid, which comes
  // round again) would hide this one from the next claim.
  'mkdir -p "$C"; rm -f "$C/ended"; echo "$$ $(started $$)" > "$C/under-way.pid"',
  "exec 9>&-",
].join("\n")
