// The shell script that runs one command inside a persistent tmux session and reports back through
// files, because the interactive shell in the pane has no other channel to the CLI. The operator's text
// is written verbatim to `cmd.sh` and never passes through tmux's command line or a quoting step: the
// only line typed into the pane is `. '<dir>/run.sh'`, built from a directory mkdtemp chose.
//
// run.sh runs the command in a subshell, so `exit 3` or `set -e` ends the command and not the session,
// and tees its output (stdout and stderr) to `out`, so the pane shows it live and the CLI streams it.
// The subshell's EXIT trap saves its cwd and exported variables, which the session's shell then adopts:
// `cd /tmp` or `export X=1` in one run is seen by the next. The exit status goes to `rc` last, after tee
// has flushed `out`, so a reader that sees `rc` has seen all output. Ctrl-C in the pane (or interrupt())
// ends the command only: the group around it catches SIGINT (a caught trap is reset in the subshell,
// so the command still dies of it) and tee ignores it (-i), so the status 130 is still reported. Only shell builtins run after the
// subshell (and tee by absolute path), so a nix-shell whose PATH lacks coreutils still reports back.
import { chmod, mkdtemp, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { shq } from "../domain/activation.ts"

export interface RunFiles {
  dir: string
  /** The command's combined output, as it is produced. */
  out: string
  /** Its exit status, written once everything else is done. */
  rc: string
  /** The line to type into the pane. */
  typed: string
}

const PREVIEW = 60

/** A one-line, control-character-free echo of the command for the pane, after a `#`. */
function preview(command: string): string {
  // Anything below a space (a newline above all) would end the comment and run the rest as a command.
  const flat = [...command]
    .map((c) => (c < " " || c === "\x7f" ? " " : c))
    .join("")
    .replace(/ +/g, " ")
    .trim()
  return flat.length > PREVIEW ? `${flat.slice(0, PREVIEW - 1)}…` : flat
}

export function runScript(dir: string, tee: string): string {
  const d = (name: string) => shq(join(dir, name))
  return [
    "# chimera: one command in this session; cwd and exported variables carry over to the next",
    `{ trap : INT; ( trap 'pwd > ${d("pwd").replaceAll("'", `'\\''`)}; export -p > ${d("env").replaceAll("'", `'\\''`)}' EXIT; . ${d("cmd.sh")} ); echo "$?" > ${d("rc.tmp")}; } 2>&1 | ${shq(tee)} -i ${d("out")}`,
    `if [ -s ${d("pwd")} ]; then IFS= read -r __chimera_pwd < ${d("pwd")} && cd -- "$__chimera_pwd"; fi`,
    `if [ -f ${d("env")} ]; then . ${d("env")} 2>/dev/null; fi`,
    `IFS= read -r __chimera_rc < ${d("rc.tmp")}; echo "$__chimera_rc" > ${d("rc")}`,
    "unset __chimera_pwd __chimera_rc",
    "",
  ].join("\n")
}

/** Writes cmd.sh and run.sh into a fresh private directory under `root` (default: the temp dir). */
export async function prepareRun(command: string, opts: { root?: string; tee: string }): Promise<RunFiles> {
  const dir = await mkdtemp(join(opts.root ?? tmpdir(), "chimera-run-"))
  await chmod(dir, 0o700)
  await writeFile(join(dir, "cmd.sh"), `${command}\n`, { mode: 0o600 })
  await writeFile(join(dir, "run.sh"), runScript(dir, opts.tee), { mode: 0o600 })
  const line = ` . ${shq(join(dir, "run.sh"))}`
  const shown = preview(command)
  return { dir, out: join(dir, "out"), rc: join(dir, "rc"), typed: shown ? `${line}  # ${shown}` : line }
}
