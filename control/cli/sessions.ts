// `chimera sessions [list] [--json]` and `chimera sessions kill NAME [--json]`: the persistent tmux sessions that
// `chimera run` works in. Also the helpers the session commands share: which tmux server to talk to
// (CHIMERA_TMUX_SOCKET names a private one, as `tmux -L` does; tests use it) and session-name parsing.
import { defineCommand } from "citty"
import { z } from "zod"
import { SessionId } from "../../protocol/ids.ts"
import { createTmuxSessions, type TmuxSessions } from "../adapters/tmux.ts"
import { CliError } from "./errors.ts"
import { ago, color, printJson, printTable, say } from "./output.ts"

// tmux keeps its sockets as files in $TMUX_TMPDIR, so the name must be a plain file name.
const SocketName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "expected letters, digits, dashes or underscores")

/** The tmux server of this CLI: CHIMERA_TMUX_SOCKET's private one, or the user's default server. */
export function cliSessions(): TmuxSessions {
  const raw = process.env.CHIMERA_TMUX_SOCKET
  if (!raw) return createTmuxSessions()
  const parsed = SocketName.safeParse(raw)
  if (!parsed.success) throw new CliError(`CHIMERA_TMUX_SOCKET: ${parsed.error.issues[0]?.message}`, "E_ARG")
  return createTmuxSessions({ socketName: parsed.data })
}

/** A session name from a flag or argument; tmux would silently rewrite `.` and `:`, so they are refused. */
export function parseSessionName(value: unknown, flag: string): SessionId {
  const parsed = SessionId.safeParse(value)
  if (!parsed.success) throw new CliError(`${flag}: ${parsed.error.issues[0]?.message ?? "invalid"}: ${value}`, "E_ARG")
  if (parsed.data.includes("."))
    throw new CliError(`${flag}: tmux does not allow '.' in session names: ${value}`, "E_ARG")
  return parsed.data
}

const list = defineCommand({
  meta: { name: "list", description: "List the persistent sessions (the default)" },
  args: { json: { type: "boolean", description: "Print JSON" } },
  async run({ args }) {
    const sessions = await cliSessions().listSessions()
    if (args.json) return printJson({ sessions })
    if (sessions.length === 0) {
      say(`No sessions. ${color.bold("chimera run COMMAND")} creates one.\n`)
      return
    }
    printTable(
      ["SESSION", "CREATED", "ATTACHED", "WINDOWS"],
      sessions.map((s) => [s.id, ago(s.createdAt), s.attached ? "yes" : "", String(s.windows)]),
    )
  },
})

const kill = defineCommand({
  meta: { name: "kill", description: "End a session and everything running in it" },
  args: {
    name: { type: "positional", description: "Session name", required: true },
    json: { type: "boolean", description: 'Print JSON: {"id": NAME, "killed": true}' },
  },
  async run({ args }) {
    const id = parseSessionName(args.name, "NAME")
    const sessions = cliSessions()
    if (!(await sessions.killSession(id))) {
      const names = (await sessions.listSessions()).map((s) => s.id)
      throw new CliError(
        `session ${id} not found; ${names.length ? `existing sessions: ${names.join(", ")}` : "there are no sessions"}`,
        "E_NOT_FOUND",
      )
    }
    // As `tokens revoke` and `users remove` answer: what was acted on, and what became of it.
    if (args.json) return printJson({ id, killed: true })
    say(`killed session ${id}\n`)
  },
})

export default defineCommand({
  meta: { name: "sessions", description: "Persistent sessions of `chimera run`: list, kill" },
  default: "list",
  subCommands: { list, kill },
})
