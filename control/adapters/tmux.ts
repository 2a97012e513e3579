// SessionPort on a real tmux server: persistent shells that outlive the CLI, which `chimera run` types
// commands into and `chimera attach` hands to a terminal. Production uses the user's default server;
// tests pass `socketName` (tmux -L) for a private one, and $TMUX_TMPDIR is honoured by tmux itself.
//
// runAndWait cannot read a command's exit code from the pane, so it hands the command to the shell as
// a script that tees the output to a file and writes the status to another (tmux-run-script.ts), then
// polls both: output streams as it grows, and the status file ends the wait. Every tmux call is an argv
// (no shell), and session targets are written `=NAME` so tmux matches exactly, not by prefix.
import { open, rm, stat } from "node:fs/promises"
import { SessionId } from "../../protocol/ids.ts"
import { createLogger } from "../../protocol/log.ts"
import { shq } from "../domain/activation.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { SessionInfo, SessionPort } from "../domain/operation-ports.ts"
import { prepareRun } from "./tmux-run-script.ts"

const log = createLogger("tmux")

export interface TmuxOptions {
  /** `tmux -L NAME`: a private server (tests); unset means the default server. */
  socketName?: string
  /** Variables set in new sessions (`new-session -e`); default NIX_CONFIG and NIX_PATH when set. */
  env?: Record<string, string>
  /** Where per-command files go (default: the temp dir). */
  runDir?: string
  /** How often runAndWait looks for output and the exit status (ms). */
  pollMs?: number
}

/** The additive part of the port: Ctrl-C to the session's foreground command, and its pane's process. */
export type TmuxSessions = SessionPort & {
  interrupt(id: SessionId): Promise<void>
  processId(id: SessionId): Promise<number | null>
}

const NO_SERVER = /no server running|error connecting to|server exited unexpectedly/
// The owner is kept in user options of the session itself, so it survives the process that made it.
// Fields are split on `|`, which no session name, number, instance id or username holds: a tab, like
// any unprintable character, comes out as `_` when the tmux client's locale is not UTF-8 (LANG unset).
const SEPARATOR = "|"
const FORMAT = [
  "#{session_name}",
  "#{session_created}",
  "#{session_attached}",
  "#{session_windows}",
  "#{@chimera-instance}",
  "#{@chimera-user}",
].join(SEPARATOR)

const passedEnv = () =>
  Object.fromEntries(
    ["NIX_CONFIG", "NIX_PATH"].flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k] as string]])),
  )

/** A SessionId, which tmux keeps as given (SessionId excludes the `.` and `:` tmux would rewrite). */
export function tmuxSessionName(id: string): SessionId {
  return SessionId.parse(id)
}

export function createTmuxSessions(opts: TmuxOptions = {}): TmuxSessions {
  const server = opts.socketName ? ["-L", opts.socketName] : []
  const env = opts.env ?? passedEnv()
  const pollMs = opts.pollMs ?? 40
  const tee = Bun.which("tee") ?? "tee"
  /** The output file of each session's command in flight, so interrupt() can wait until it has begun. */
  const inFlight = new Map<string, Promise<string | null>>()

  async function tmux(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const stdin = input === undefined ? "ignore" : new Blob([input])
    const proc = Bun.spawn(["tmux", ...server, ...args], { stdin, stdout: "pipe", stderr: "pipe" })
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ])
    log.debug("tmux", { args: args.slice(0, 2), code })
    return { code, stdout, stderr }
  }

  async function tmuxOk(args: string[], input?: string): Promise<string> {
    const r = await tmux(args, input)
    if (r.code !== 0) throw new ChimeraError("INTERNAL", `tmux ${args[0]} failed: ${r.stderr.trim() || r.code}`)
    return r.stdout
  }

  const exists = async (id: SessionId) => (await tmux(["has-session", "-t", `=${id}`])).code === 0

  async function listSessions(): Promise<SessionInfo[]> {
    const r = await tmux(["list-sessions", "-F", FORMAT])
    if (r.code !== 0) {
      if (NO_SERVER.test(r.stderr)) return []
      throw new ChimeraError("INTERNAL", `tmux list-sessions failed: ${r.stderr.trim()}`)
    }
    return r.stdout
      .split("\n")
      .filter(Boolean)
      .flatMap((line) => {
        const [name = "", created = "0", attached = "0", windows = "0", instance = "", user = ""] =
          line.split(SEPARATOR)
        const id = SessionId.safeParse(name)
        if (!id.success) return []
        const createdAt = new Date(Number(created) * 1000).toISOString()
        const owner = instance ? { instance, user } : null
        return [{ id: id.data, createdAt, attached: Number(attached) > 0, windows: Number(windows), owner }]
      })
  }

  /** Throws NOT_FOUND naming the session and the ones that do exist. */
  async function mustExist(id: SessionId): Promise<void> {
    if (await exists(id)) return
    const names = (await listSessions()).map((s) => s.id)
    const known = names.length ? `existing sessions: ${names.join(", ")}` : "there are no sessions"
    throw new ChimeraError("NOT_FOUND", `session ${id} not found; ${known}`, { sessions: names })
  }

  async function type(id: SessionId, text: string): Promise<void> {
    // Through a buffer read from stdin, not as an argument: a command line is readable by every local
    // user (ps, /proc/PID/cmdline), and the text may show a secret the person typed. The buffer is
    // pasted and deleted at once; Enter goes separately as a key.
    // -r keeps a line feed a line feed (as send-keys -l sent it), so a multi-line prompt is not
    // submitted at its first line; a buffer left by a failed paste is deleted all the same.
    const buffer = `chimera-${id}-${crypto.randomUUID()}`
    await tmuxOk(["load-buffer", "-b", buffer, "-"], text)
    try {
      await tmuxOk(["paste-buffer", "-d", "-r", "-b", buffer, "-t", `=${id}:`])
    } finally {
      await tmux(["delete-buffer", "-b", buffer])
    }
    await tmuxOk(["send-keys", "-t", `=${id}:`, "Enter"])
  }

  async function readFrom(path: string, offset: number): Promise<Uint8Array> {
    const size = await stat(path).then(
      (s) => s.size,
      () => 0,
    )
    if (size <= offset) return new Uint8Array()
    const fh = await open(path, "r")
    try {
      const buf = new Uint8Array(size - offset)
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset)
      return buf.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
  }

  async function readStatus(path: string): Promise<number | null> {
    const text = await Bun.file(path)
      .text()
      .catch(() => "")
    // Written by the shell with one echo; until it ends in a newline it may still be in flight.
    return /^\d+\n$/.test(text) ? Number(text.trim()) : null
  }

  return {
    async createSession(id, start = {}) {
      const name = tmuxSessionName(id)
      if (await exists(name)) return false
      const vars = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`])
      const cwd = start.cwd === undefined ? [] : ["-c", start.cwd]
      // tmux execs two or more words as an argv but hands a single one to the shell, so quote that one.
      const argv = start.command ?? []
      const command = argv.length === 1 ? [`exec ${shq(argv[0] as string)}`] : argv
      // A wide pane keeps long output lines whole for capture-pane; attaching resizes it anyway.
      const r = await tmux(["new-session", "-d", "-s", name, "-x", "200", "-y", "50", ...cwd, ...vars, ...command])
      if (r.code === 0) {
        // A crash between these two calls leaves a session without an owner, which a later start ends.
        if (start.owner) {
          await tmuxOk(["set-option", "-t", `=${name}:`, "@chimera-instance", start.owner.instance])
          await tmuxOk(["set-option", "-t", `=${name}:`, "@chimera-user", start.owner.user])
        }
        log.info("session created", { session: name })
        return true
      }
      if (/duplicate session/.test(r.stderr)) return false
      throw new ChimeraError("INTERNAL", `tmux new-session ${name} failed: ${r.stderr.trim()}`)
    },

    listSessions,

    async killSession(id) {
      const r = await tmux(["kill-session", "-t", `=${tmuxSessionName(id)}`])
      return r.code === 0
    },

    async runCommand(id, command) {
      const name = tmuxSessionName(id)
      await mustExist(name)
      await type(name, command)
      return true
    },

    async runAndWait(id, command, onOutput) {
      const name = tmuxSessionName(id)
      // Registered before the first await, so an interrupt() sent the moment the command was asked for
      // already waits for it.
      let begun: (out: string | null) => void = () => {}
      const marker = new Promise<string | null>((resolve) => {
        begun = resolve
      })
      inFlight.set(name, marker)
      try {
        await mustExist(name)
        const run = await prepareRun(command, { root: opts.runDir, tee })
        begun(run.out)
        const decoder = new TextDecoder()
        let offset = 0
        const drain = async () => {
          const bytes = await readFrom(run.out, offset)
          offset += bytes.length
          const text = decoder.decode(bytes, { stream: true })
          if (text) onOutput?.(text)
        }
        try {
          await type(name, run.typed)
          for (let polls = 1; ; polls++) {
            const code = await readStatus(run.rc)
            await drain()
            if (code !== null) {
              log.info("command ended", { session: name, exitCode: code })
              return { exitCode: code }
            }
            // A session that died (its shell exited, someone killed it) will never write the status.
            if (polls % 25 === 0 && !(await exists(name)))
              throw new ChimeraError("INTERNAL", `session ${name} ended before the command finished`)
            await Bun.sleep(pollMs)
          }
        } finally {
          await rm(run.dir, { recursive: true, force: true })
        }
      } finally {
        begun(null)
        if (inFlight.get(name) === marker) inFlight.delete(name)
      }
    },

    attachCommand(id) {
      return ["tmux", ...server, "attach-session", "-t", `=${tmuxSessionName(id)}`]
    },

    async capture(id) {
      const name = tmuxSessionName(id)
      await mustExist(name)
      const text = await tmuxOk(["capture-pane", "-p", "-J", "-t", `=${name}:`])
      return `${text.replace(/\s+$/, "")}\n`
    },

    async interrupt(id) {
      const name = tmuxSessionName(id)
      // A Ctrl-C that reaches the shell before it has read the typed line discards the line, and the
      // status file would never come: wait until the run has begun (tee made its output file), then
      // a moment more for the group around the command to set its INT trap.
      const marker = inFlight.get(name)
      const out = marker === undefined ? null : await marker
      if (out !== null) {
        for (let i = 0; i < 250 && inFlight.get(name) === marker; i++) {
          if (
            await stat(out).then(
              () => true,
              () => false,
            )
          )
            break
          await Bun.sleep(pollMs / 2)
        }
        await Bun.sleep(50)
      }
      await tmuxOk(["send-keys", "-t", `=${name}:`, "C-c"])
    },

    async processId(id) {
      const r = await tmux(["display-message", "-p", "-t", `=${tmuxSessionName(id)}:`, "#{pane_pid}"])
      const pid = Number(r.stdout.trim())
      return r.code === 0 && Number.isInteger(pid) && pid > 0 ? pid : null
    },
  }
}
