// Starts a deploy's command on a node inside `nix-shell <drv>`, in a persistent tmux session there
// (created if missing), so an operator can `tmux attach` to it later. The command is handed over
// base64-encoded in a file, so no quoting of the operator's text ever reaches a shell or tmux.
import { shq } from "./activation.ts"
import type { RemoteExecutorPort, Target } from "./operation-ports.ts"

/** Bytes of a deploy command's output kept in /run/chimera/commands/<id>/output. */
export const OUTPUT_CAP = 16 * 1024 * 1024

export interface RemoteCommand {
  session: string
  drv: string
  command: string
  id: string
}

export async function startRemoteCommand(
  exec: RemoteExecutorPort,
  target: Target,
  c: RemoteCommand,
): Promise<{ ok: boolean; error: string }> {
  const dir = `/run/chimera/commands/${c.id}`
  const encoded = Buffer.from(c.command).toString("base64")
  const script = [
    "set -eu",
    // The command and its output may hold what only root should read.
    "umask 077",
    `D=${shq(dir)}`,
    'mkdir -p "$D"',
    `echo ${shq(encoded)} | base64 -d > "$D/command"`,
    // The pane shows everything; the file keeps the first 16 MiB (a long-running service must not fill
    // /run), and the rest is drained so the command never meets a closed pipe; the status is written
    // once the file is complete.
    `printf '%s\\n' ${shq(`nix-shell ${c.drv} --run "$(cat ${dir}/command)" 2>&1 | tee >({ head -c ${OUTPUT_CAP}; cat >/dev/null; } > ${dir}/output); s="\${PIPESTATUS[0]:-$?}"; wait $! 2>/dev/null; echo "$s" > ${dir}/status`)} > "$D/run"`,
    // Exact targets (`=name`: no prefix match on another session) and a window of its own, not keys
    // typed into whatever runs in the session's foreground; a shell stays behind for whoever attaches.
    `W=${shq(`bash ${dir}/run; exec bash`)}`,
    `if tmux has-session -t ${shq(`=${c.session}`)} 2>/dev/null; then tmux new-window -d -t ${shq(`=${c.session}:`)} "$W"`,
    `else tmux new-session -d -s ${shq(c.session)} "$W"; fi`,
    "echo started",
  ].join("\n")
  const r = await exec.exec(target, script, { timeoutMs: 30_000 })
  if (r.ok) return { ok: true, error: "" }
  return {
    ok: false,
    error: r.failure?.message ?? `exited ${r.exitCode}: ${(r.stderr || r.stdout).trim().slice(-500)}`,
  }
}
