// CLI sessions: a bash or an AI coding tool running on the control-plane host in its own
// tmux session, owned by the principal that opened it. A bash session runs each command through the
// tmux port's runAndWait, so output streams as it comes and the exit code is the command's own; cwd
// and exported variables carry over from one command to the next. An AI tool gets the text typed into
// its pane: its answer is in the pane (`chimera attach`), not parsed back, because each tool draws its
// own interface and none of them is installed here to test against. Output is redacted as one text
// while it streams (protocol/secret-stream.ts), before the history or any listener sees it.
//
// Who may do what: opening a bash session or a tool with its prompts off needs cli:full_access; only
// the owner (or a holder of cli:full_access) sees or uses a session; every command is first assessed
// by the command registry and needs commands:run, or commands:run-high when it is high risk. Sessions
// and their bounded history live in memory (cli-session-table.ts): they end with the control plane,
// which kills them on stop, and a control plane that died without stopping has its sessions ended by
// the next start.
import { randomBytes } from "node:crypto"
import { stat } from "node:fs/promises"
import { homedir } from "node:os"
import { isAbsolute } from "node:path"
import { SessionId } from "../../protocol/ids.ts"
import { createLogger, redactText } from "../../protocol/log.ts"
import { createSecretStream } from "../../protocol/secret-stream.ts"
import { can, leastRoleFor, type Permission } from "./auth/roles.ts"
import type { HistoryQuery } from "./cli-history.ts"
import type { Providers } from "./cli-providers.ts"
import { endLeftoverSessions } from "./cli-session-leftovers.ts"
import type {
  CliTmuxPort,
  NewCliSession,
  ProcessInstance,
  RunOutcome,
  SessionEvent,
  SessionFilter,
} from "./cli-session-model.ts"
import { createSessionTable, type Session } from "./cli-session-table.ts"
import { assessCommand, type CommandAssessment } from "./command-assessment.ts"
import { ChimeraError } from "./errors.ts"
import type { Clock, UserPrincipal } from "./ports.ts"

const log = createLogger("cli-sessions")

export interface CliSessionsOptions {
  tmux: CliTmuxPort
  providers: Providers
  clock: Clock
  /** The default cwd when $HOME is not a directory. */
  dataDir: string
  /** Live sessions on this host at most; opening one more answers 429. */
  processLimit?: number
  /** This process, tagged on each session so a later start can end the ones it leaves behind. */
  instance: ProcessInstance
}

const MAX_QUEUED = 16

export interface RunOptions {
  timeoutMs?: number
  /** Each piece of output as it comes, redacted. */
  onOutput?: (chunk: string) => void
  /** Aborted: the command does not begin if it has not yet (its reason is thrown). */
  signal?: AbortSignal
}

const needs = (p: Permission, what: string, who: UserPrincipal) =>
  new ChimeraError(
    "PERMISSION_DENIED",
    `${what} needs the ${p} permission (role ${leastRoleFor(p)}); ${who.name} is ${who.role}`,
  )

/** Which permission a command needs, from its assessed risk. */
export function permissionFor(assessment: CommandAssessment): Permission {
  return assessment.risk === "high" ? "commands:run-high" : "commands:run"
}

export function createCliSessions({
  tmux,
  providers,
  clock,
  dataDir,
  processLimit = 20,
  instance,
}: CliSessionsOptions) {
  const { sessions, live, setStatus, shownStatus, end, summary, record, add } = createSessionTable(clock)
  const startedAt = clock.now()
  let created = 0
  let commands = 0
  let failures = 0

  // A session of someone else's answers 403, not 404: ids carry 64 random bits, so whoever names
  // one learnt it from its owner or a log; the 403 tells them why, and it is audited as a refusal.
  const mayUse = (s: Session, who: UserPrincipal) => s.owner.subject === who.subject || can(who.role, "cli:full_access")
  function find(id: string, who: UserPrincipal): Session {
    const s = sessions.get(id as SessionId)
    if (!s) throw new ChimeraError("NOT_FOUND", `CLI session ${id} not found`)
    if (!mayUse(s, who))
      throw new ChimeraError(
        "PERMISSION_DENIED",
        `CLI session ${id} belongs to another user; only its owner may use it`,
      )
    return s
  }

  /** Marks sessions whose tmux session is gone (the tool exited, someone killed it) as terminated. */
  async function sync(): Promise<void> {
    if (live().length === 0) return
    const running = new Set((await tmux.listSessions()).map((s) => s.id))
    for (const s of live()) if (s.status !== "initializing" && !running.has(s.id)) end(s)
  }

  async function resolveCwd(given: string | undefined): Promise<string> {
    const isDir = (p: string) =>
      stat(p).then(
        (st) => st.isDirectory(),
        () => false,
      )
    if (given === undefined) return (await isDir(homedir())) ? homedir() : dataDir
    const problem = !isAbsolute(given) || given.includes("\0") ? "must be an absolute path" : null
    if (problem === null && (await isDir(given))) return given
    const message = problem ?? "is not an existing directory on the control-plane host"
    throw new ChimeraError("VALIDATION_FAILED", `body.cwd: ${message}`, { issues: [{ path: "cwd", message }] })
  }

  async function execute(s: Session, command: string, opts: RunOptions): Promise<RunOutcome> {
    const started = clock.now().getTime()
    const begun = performance.now()
    if (s.status === "terminated")
      throw new ChimeraError("CONFLICT", `CLI session ${s.id} has ended; open a new one`, { reason: "PROCESS_DEAD" })
    if (opts.signal?.aborted) {
      const reason: unknown = opts.signal.reason
      record(s, "error", reason instanceof Error ? reason.message : "not run: abandoned while it waited")
      opts.signal.throwIfAborted()
    }
    setStatus(s, "processing")
    if (s.provider !== "bash") {
      // An AI tool reads its own prompt; the answer stays in its pane.
      await tmux.runCommand(s.id, command)
      setStatus(s, "ready")
      return { exitCode: null, success: true, timedOut: false, typed: true, durationMs: 0, bytes: 0 }
    }
    let bytes = 0
    let timedOut = false
    const timer =
      opts.timeoutMs === undefined
        ? null
        : setTimeout(() => {
            timedOut = true
            tmux.interrupt(s.id).catch((error) => log.warn("interrupt after timeout failed", { session: s.id, error }))
          }, opts.timeoutMs)
    // Redacted as one text, not chunk by chunk: a token the pane prints in two reads is still one token.
    const secrets = createSecretStream()
    const emit = (text: string) => {
      if (text === "") return
      record(s, "output", text, { streamChunk: true })
      opts.onOutput?.(text)
    }
    try {
      const { exitCode } = await tmux.runAndWait(s.id, command, (chunk) => {
        bytes += Buffer.byteLength(chunk)
        emit(secrets.push(chunk))
      })
      emit(secrets.end())
      const durationMs = Math.round(performance.now() - begun)
      record(s, "completion", "", { exitCode, durationMs, timedOut })
      setStatus(s, "ready")
      if (exitCode !== 0) failures++
      return { exitCode, success: exitCode === 0 && !timedOut, timedOut, typed: false, durationMs, bytes }
    } catch (error) {
      emit(secrets.end())
      failures++
      const gone = !(await tmux.listSessions().then(
        (l) => l.some((x) => x.id === s.id),
        () => false,
      ))
      record(s, "error", error instanceof Error ? error.message : String(error), { startedAt: started })
      if (gone) {
        end(s)
        throw new ChimeraError("CONFLICT", `CLI session ${s.id} ended while the command ran`, {
          reason: "PROCESS_DEAD",
        })
      }
      setStatus(s, "error")
      throw error
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  return {
    providers,
    clock,

    async create(input: NewCliSession, who: UserPrincipal) {
      if ((input.cli_tool === "bash" || input.full_access) && !can(who.role, "cli:full_access"))
        throw needs("cli:full_access", input.cli_tool === "bash" ? "a bash session" : "full_access", who)
      const cwd = await resolveCwd(input.cwd)
      const found = providers.locate(input.cli_tool)
      if (found.path === null)
        throw new ChimeraError("PROVIDER_UNAVAILABLE", `${input.cli_tool} is unavailable: ${found.reason}`, {
          provider: input.cli_tool,
          binary: providers.spec(input.cli_tool).binary,
        })
      await sync()
      // A full host answers 429: RESOURCE_EXHAUSTED maps to it (api/errors.ts).
      if (live().length >= processLimit)
        throw new ChimeraError(
          "RESOURCE_EXHAUSTED",
          `${processLimit} CLI sessions are open on this host; delete one before opening another`,
          { processLimit },
        )
      const id = SessionId.parse(`chimera-cli-${randomBytes(8).toString("hex")}`)
      const s = add({
        id,
        provider: input.cli_tool,
        mode: input.mode,
        model: input.model ?? null,
        fullAccess: input.full_access,
        cwd,
        metadata: input.metadata ?? {},
        owner: { subject: who.subject, name: who.name },
      })
      try {
        const argv = providers.argv(input.cli_tool, found.path, { model: input.model, fullAccess: input.full_access })
        await tmux.createSession(id, { cwd, command: argv, owner: { instance: instance.id, user: who.name } })
      } catch (error) {
        sessions.delete(id)
        throw error
      }
      created++
      setStatus(s, "ready")
      log.info("CLI session opened", { session: id, provider: s.provider, owner: who.name, cwd })
      return summary(s)
    },

    async list(who: UserPrincipal, f: SessionFilter) {
      await sync()
      const mine = [...sessions.values()]
        .filter((s) => mayUse(s, who))
        .map(summary)
        .filter((s) => (f.provider === undefined || s.provider === f.provider) && (f.status ?? s.status) === s.status)
      return {
        sessions: mine.slice(f.offset, f.offset + f.limit),
        total: mine.length,
        limit: f.limit,
        offset: f.offset,
      }
    },

    async get(id: string, who: UserPrincipal) {
      const s = find(id, who)
      await sync()
      return {
        ...summary(s),
        processId: s.status === "terminated" ? null : await tmux.processId(s.id),
        statistics: { messagesExchanged: s.messagesExchanged, bytesTransferred: s.bytesTransferred },
        history: s.history.size(),
      }
    },

    /** The session, if `who` may use it (the WebSocket checks this before it upgrades). */
    access: (id: string, who: UserPrincipal) => summary(find(id, who)),

    history(id: string, who: UserPrincipal, q: HistoryQuery) {
      return { sessionId: id, ...find(id, who).history.query(q) }
    },

    async terminate(id: string, who: UserPrincipal) {
      const s = find(id, who)
      await tmux.killSession(s.id)
      end(s)
      sessions.delete(s.id)
      log.info("CLI session closed", { session: s.id, by: who.name })
    },

    /** Ctrl-C to the session's foreground command; true when a command was running. */
    async interrupt(id: string, who: UserPrincipal): Promise<boolean> {
      const s = find(id, who)
      if (s.status === "terminated")
        throw new ChimeraError("CONFLICT", `CLI session ${s.id} has ended`, { reason: "PROCESS_DEAD" })
      await tmux.interrupt(s.id)
      s.lastActivity = clock.now()
      return s.status === "processing"
    },

    /** The registry's view of a command and whether `who` may run it (throws PERMISSION_DENIED). */
    authorize(command: string, who: UserPrincipal): CommandAssessment {
      const assessment = assessCommand(command)
      const permission = permissionFor(assessment)
      if (!can(who.role, permission))
        throw new ChimeraError(
          "PERMISSION_DENIED",
          `this ${assessment.risk}-risk command needs the ${permission} permission (role ${leastRoleFor(permission)}); ${who.name} is ${who.role}: ${assessment.reasons.join("; ")}`,
          { risk: assessment.risk, reasons: assessment.reasons },
        )
      return assessment
    },

    /** Runs one command in the session after those before it; authorize() first. */
    async run(id: string, who: UserPrincipal, command: string, opts: RunOptions = {}): Promise<RunOutcome> {
      const s = find(id, who)
      if (s.pending >= MAX_QUEUED)
        throw new ChimeraError("RESOURCE_EXHAUSTED", `${MAX_QUEUED} commands are already waiting in ${s.id}`)
      record(s, "command", redactText(command), { by: who.name })
      commands++
      s.pending++
      const turn = s.queue.then(() => execute(s, command, opts))
      s.queue = turn.catch(() => {})
      try {
        return await turn
      } finally {
        s.pending--
      }
    },

    watch(id: string, listener: (e: SessionEvent) => void): () => void {
      const s = sessions.get(id as SessionId)
      if (!s || s.status === "terminated") {
        listener({ kind: "terminated" })
        return () => {}
      }
      s.listeners.add(listener)
      return () => s.listeners.delete(listener)
    },

    status: (id: string) => {
      const s = sessions.get(id as SessionId)
      return s ? shownStatus(s) : "terminated"
    },

    async systemStatus() {
      await sync()
      const now = clock.now()
      const open = live()
      return {
        status: "healthy" as const,
        activeSessions: open.length,
        activeProcesses: open.length,
        resources: { processLimit, processesUsed: open.length },
        statistics: {
          totalSessionsCreated: created,
          totalCommandsProcessed: commands,
          errorRate: commands === 0 ? 0 : Math.round((failures / commands) * 1000) / 1000,
        },
        uptime: {
          startedAt: startedAt.toISOString(),
          uptimeSeconds: Math.floor((now.getTime() - startedAt.getTime()) / 1000),
        },
      }
    },

    /** Ends the sessions a control plane that died left on this host (call once, at start). */
    endLeftovers: () => endLeftoverSessions(tmux, instance),

    /** Kills every session this control plane opened (on stop). */
    async closeAll(): Promise<void> {
      await Promise.all(live().map((s) => tmux.killSession(s.id).catch(() => false)))
      for (const s of live()) end(s)
      sessions.clear()
    },
  }
}

export type CliSessions = ReturnType<typeof createCliSessions>
