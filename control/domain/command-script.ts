// The shell script that runs one API command on a node over SSH. The operator's text is
// handed over base64-encoded and `eval`ed by the login shell, so no quoting of it ever reaches a
// shell line we build. In a session, the shell first restores what the session's earlier commands
// left (working directory and exported variables, kept on the node under a directory of its own), and
// an EXIT trap saves them again however the command ends (even by `exit`), then prints the working
// directory after a marker the control plane strips from the output.
//
// A sudo password never travels in argv, the environment or a file: it is the first line of the
// command's stdin, read into a shell variable that is never exported (and unset on exit, so no session
// file keeps it). `sudo` in the command becomes a function that first validates the password with
// `sudo -S -v` (which reads it from a pipe only when sudo needs one) and then runs the real sudo with
// `-n` on the ticket that left, so neither the command's stdin nor its environment ever holds it.
//
// The session's files live in the login's own runtime directory (/run for root, $XDG_RUNTIME_DIR or
// ~/.cache otherwise), never in /tmp, where another local user could plant them.
import { shq } from "./activation.ts"

/** Ends the output: `\n` MARK cwd `\n`. A record separator no ordinary output carries. */
export const CWD_MARK = "\u001eCHIMERA-CWD:"

export interface CommandScriptOptions {
  command: string
  /** Keep cwd and exported variables between commands under this session id. */
  sessionId?: string
  /** Read a sudo password from stdin's first line and answer sudo's prompts with it. */
  sudo: boolean
}

// Variables that describe this connection or this shell, not the session, and ours: never carried over.
const TRANSIENT =
  "^(declare -x |export )(SSH_[A-Z_]*|PWD|OLDPWD|SHLVL|_|__[Cc][Hh][Ii][Mm][Ee][Rr][Aa]_[A-Za-z_]*)(=|$)"

export function commandScript(o: CommandScriptOptions): string {
  const encoded = Buffer.from(o.command).toString("base64")
  const lines: string[] = []
  if (o.sessionId !== undefined) {
    lines.push(
      // /run is the node's (root: tmpfs, gone on reboot, like the tmux sessions); others use their own.
      `if [ -w /run ]; then __chimera_base=/run/chimera/api-sessions; else __chimera_base="\${XDG_RUNTIME_DIR:-$HOME/.cache}/chimera/api-sessions"; fi`,
      `__chimera_s="$__chimera_base/${o.sessionId}"; (umask 077; mkdir -p "$__chimera_s") || exit 125`,
      'if [ -r "$__chimera_s/env" ]; then . "$__chimera_s/env"; fi',
      'if [ -r "$__chimera_s/cwd" ]; then cd -- "$(cat "$__chimera_s/cwd")" 2>/dev/null || true; fi',
    )
  }
  const save =
    o.sessionId === undefined
      ? ""
      : ` __chimera_t=$(mktemp "$__chimera_s/env.XXXXXX") && export -p | grep -Ev ${shq(TRANSIENT)} > "$__chimera_t" && mv -f "$__chimera_t" "$__chimera_s/env"; pwd > "$__chimera_s/cwd";`
  lines.push(
    `__chimera_exit() { __chimera_rc=$?; unset __chimera_pw;${save} printf '\\n%s%s\\n' ${shq(CWD_MARK)} "$PWD"; exit "$__chimera_rc"; }`,
    "trap __chimera_exit EXIT",
  )
  if (o.sudo) {
    lines.push(
      "IFS= read -r __chimera_pw || true",
      `sudo() { printf '%s\\n' "$__chimera_pw" | command sudo -S -v -p '' && command sudo -n "$@"; }`,
    )
  }
  lines.push(`eval "$(printf '%s' ${shq(encoded)} | base64 -d)"`)
  return `${lines.join("\n")}\n`
}

/** Splits the working directory off the end of a command's stdout. */
export function splitCwd(stdout: string): { stdout: string; cwd: string | null } {
  const at = stdout.lastIndexOf(`\n${CWD_MARK}`)
  if (at < 0) return { stdout, cwd: null }
  const cwd = stdout.slice(at + 1 + CWD_MARK.length).replace(/\n$/, "")
  return { stdout: stdout.slice(0, at), cwd: cwd === "" ? null : cwd }
}
