// `chimera attach SESSION_ID`: hands the terminal to a persistent session. With a terminal
// (stdin and stdout both TTYs) it runs `tmux attach-session` in the foreground and exits with its code;
// without one (a pipe, CI, an AI agent) it prints what the session's pane shows right now.
import { defineCommand } from "citty"
import { cliSessions, parseSessionName } from "./sessions.ts"

export default defineCommand({
  meta: { name: "attach", description: "Attach to a persistent session (without a terminal: print its pane)" },
  args: { session_id: { type: "positional", description: "Session to attach to", required: true } },
  async run({ args }) {
    const id = parseSessionName(args.session_id, "SESSION_ID")
    const sessions = cliSessions()
    // capture also proves the session exists, and names the ones that do when it does not.
    const pane = await sessions.capture(id)
    if (!(process.stdin.isTTY && process.stdout.isTTY)) {
      process.stdout.write(pane)
      return
    }
    // Inside another tmux, $TMUX makes tmux refuse to nest; the operator asked for it explicitly.
    const env = { ...process.env, TMUX: undefined }
    const proc = Bun.spawn(sessions.attachCommand(id), { stdio: ["inherit", "inherit", "inherit"], env })
    process.exitCode = await proc.exited
  },
})
