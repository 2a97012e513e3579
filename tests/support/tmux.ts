// Private tmux servers for tests (`tmux -L NAME`). kill-server stops one but tmux 3.3 leaves its
// socket file behind in $TMUX_TMPDIR/tmux-UID, so the file is removed here as well.
import { rm } from "node:fs/promises"
import { join } from "node:path"
import { run } from "./tools.ts"

export function tmuxSocketPath(name: string): string {
  return join(process.env.TMUX_TMPDIR || "/tmp", `tmux-${process.getuid?.() ?? 0}`, name)
}

/** Stops the private server NAME, if it runs, and removes its socket. */
export async function killTmuxServer(name: string): Promise<void> {
  await run(["tmux", "-L", name, "kill-server"])
  await rm(tmuxSocketPath(name), { force: true })
}
