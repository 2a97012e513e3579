// Commands on fleet nodes through the API, over the control plane's own SSH connections:
// one-off or in a persistent session (its working directory and exported variables survive between
// commands, kept on the node), with the command registry's risk level checked against the caller's
// role, sudo passwords answered without ever being stored, echoed or logged, and every run kept in
// the session's history. Nodes are the ones named in [fleet.nodes] of the control plane's
// configuration: the API never opens SSH to an address a caller makes up.
import { randomUUID } from "node:crypto"
import { createLogger, redactText } from "../../protocol/log.ts"
import { shq } from "./activation.ts"
import { can } from "./auth/roles.ts"
import { assessCommand } from "./command-assessment.ts"
import type { RiskLevel } from "./command-entry.ts"
import { checkCommandRisk } from "./command-risk.ts"
import { commandScript, splitCwd } from "./command-script.ts"
import { ChimeraError, forbidden, invalid, notFound } from "./errors.ts"
import type { RemoteExecutorPort, RemoteFailureInfo, Target } from "./operation-ports.ts"
import type { Clock, UserPrincipal } from "./ports.ts"

const log = createLogger("commands")

export interface CommandSessionRecord {
  id: string
  /** The principal's subject (user id or `token:<id>`) that created it. */
  owner: string
  /** The node its commands run on, fixed by the first command when not given at creation. */
  node: string | null
  clientInfo: Record<string, unknown> | null
  createdAt: string
  lastActivity: string
  commandCount: number
  currentDirectory: string | null
  closedAt: string | null
}

export interface CommandHistoryEntry {
  at: string
  node: string
  command: string
  exitCode: number | null
  success: boolean
  /** Seconds. */
  executionTime: number
  risk: RiskLevel
  requestId: string
}

export interface CommandStorePort {
  /** False when the id is taken. */
  createSession(s: Omit<CommandSessionRecord, "commandCount" | "currentDirectory" | "closedAt">): Promise<boolean>
  getSession(id: string): Promise<CommandSessionRecord | null>
  closeSession(id: string, at: string): Promise<boolean>
  recordRun(sessionId: string, entry: CommandHistoryEntry, currentDirectory: string | null): Promise<void>
  /** The newest `limit` entries, oldest first. */
  history(sessionId: string, limit: number): Promise<CommandHistoryEntry[]>
}

/** Where the API's commands go: fleet node names to SSH targets, and the executor that runs them. */
export interface CommandTargets {
  resolve(node: string): Target | null
  /** A node name, or `@tag` for every named node with that tag; [] when it names none. */
  resolveAll(spec: string): Target[]
  names(): string[]
  executor: RemoteExecutorPort
}

export interface RunCommandInput {
  command: string
  node?: string
  sessionId?: string
  /** Seconds; default 30, or 600 for Nix builds and system switches. */
  timeout?: number
  sudoPassword?: string
  /** Log in as this user instead of the node's configured one (needs commands:run-high). */
  username?: string
  requestId: string
  /** Counts the run against its rate limit, once the session is known to be the caller's. */
  charge?: (sessionId: string | null) => void
}

export interface CommandResult {
  success: boolean
  exit_code: number | null
  stdout: string
  stderr: string
  command: string
  /** Seconds. */
  execution_time: number
  metadata: {
    node: string
    session_id: string | null
    risk_level: RiskLevel
    current_directory: string | null
    /** Set when the command could not run at all (connection, host key, login, timeout). */
    failure?: RemoteFailureInfo
  }
}

/** A session with no command for this long (seconds) has expired: the caller opens a new one. */
export const SESSION_TIMEOUT_SECONDS = 3600
const DEFAULT_TIMEOUT = 30
const LONG_TIMEOUT = 600
/** Programs whose runs take minutes (builds and switches): a command without a timeout of its own that
 * runs one gets LONG_TIMEOUT instead of DEFAULT_TIMEOUT. */
const LONG_RUNNING = new Set(["nixos-rebuild", "nix-build", "nix-store", "nix", "nix-env", "nix-collect-garbage"])
const REDACTED = "[REDACTED]"
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/

export function createCommandService(deps: { targets: CommandTargets | null; store: CommandStorePort; clock: Clock }) {
  const { store, clock } = deps

  const targetsOrThrow = (): CommandTargets => {
    if (!deps.targets)
      throw invalid(
        "this control plane has no SSH access to nodes: name them under [fleet.nodes] and set [ssh] identity_file and known_hosts_file in its configuration",
      )
    return deps.targets
  }

  const resolveNode = (name: string): Target => {
    const targets = targetsOrThrow()
    const target = targets.resolve(name)
    if (!target) {
      const known = targets.names()
      throw new ChimeraError(
        "NOT_FOUND",
        `node ${JSON.stringify(name)} not found: the command API reaches the nodes in [fleet.nodes] (${known.length ? known.join(", ") : "none configured"})`,
      )
    }
    return target
  }

  // Runs in one session go one at a time (in this process): its state files are read and written whole.
  const running = new Map<string, Promise<unknown>>()
  const serially = async <T>(key: string | null, work: () => Promise<T>): Promise<T> => {
    if (key === null) return work()
    const before = running.get(key) ?? Promise.resolve()
    const mine = before.catch(() => {}).then(work)
    running.set(key, mine)
    try {
      return await mine
    } finally {
      if (running.get(key) === mine) running.delete(key)
    }
  }

  /** A session the caller may use: their own, or anyone's for an admin. */
  const ownSession = async (principal: UserPrincipal, id: string): Promise<CommandSessionRecord> => {
    const s = await store.getSession(id)
    if (!s) throw notFound(`session ${JSON.stringify(id)}`)
    if (s.owner !== principal.subject && principal.role !== "admin")
      throw forbidden(`session ${JSON.stringify(id)} belongs to another user`)
    if (s.closedAt) throw new ChimeraError("CONFLICT", `session ${JSON.stringify(id)} was closed at ${s.closedAt}`)
    const idleSeconds = (clock.now().getTime() - Date.parse(s.lastActivity)) / 1000
    if (idleSeconds > SESSION_TIMEOUT_SECONDS)
      throw new ChimeraError(
        "CONFLICT",
        `session ${JSON.stringify(id)} expired after ${SESSION_TIMEOUT_SECONDS / 60} minutes without a command; create a new one`,
      )
    return s
  }

  const timeoutFor = (command: string, given: number | undefined): number => {
    if (given !== undefined) return given
    const programs = assessCommand(command).parts.map((p) => p.program)
    return programs.some((p) => LONG_RUNNING.has(p)) ? LONG_TIMEOUT : DEFAULT_TIMEOUT
  }

  return {
    async createSession(
      principal: UserPrincipal,
      input: { sessionId?: string; node?: string; clientInfo?: Record<string, unknown> },
    ) {
      if (input.node !== undefined) resolveNode(input.node)
      const id = input.sessionId ?? randomUUID()
      const now = clock.now().toISOString()
      const created = await store.createSession({
        id,
        owner: principal.subject,
        node: input.node ?? null,
        clientInfo: input.clientInfo ?? null,
        createdAt: now,
        lastActivity: now,
      })
      if (!created) throw new ChimeraError("CONFLICT", `session ${JSON.stringify(id)} exists already; pick another id`)
      return {
        session_id: id,
        created: true,
        created_at: now,
        node: input.node ?? null,
        timeout: SESSION_TIMEOUT_SECONDS,
      }
    },

    async sessionInfo(principal: UserPrincipal, id: string) {
      const s = await ownSession(principal, id)
      return {
        session_id: s.id,
        node: s.node,
        created_at: s.createdAt,
        last_activity: s.lastActivity,
        command_count: s.commandCount,
        current_directory: s.currentDirectory,
        client_info: s.clientInfo,
        context_enabled: true,
      }
    },

    async history(principal: UserPrincipal, id: string, limit: number) {
      await ownSession(principal, id)
      return (await store.history(id, limit)).map((h) => ({
        command: h.command,
        node: h.node,
        timestamp: h.at,
        exit_code: h.exitCode,
        success: h.success,
        execution_time: h.executionTime,
        risk_level: h.risk,
        request_id: h.requestId,
      }))
    },

    async closeSession(principal: UserPrincipal, id: string) {
      if (!SESSION_ID.test(id)) throw invalid("expected a session id of 1-64 letters, digits, - or _")
      const s = await store.getSession(id)
      if (!s) throw notFound(`session ${JSON.stringify(id)}`)
      if (s.owner !== principal.subject && principal.role !== "admin")
        throw forbidden(`session ${JSON.stringify(id)} belongs to another user`)
      if (s.closedAt) return { success: true, message: `Session was already closed at ${s.closedAt}` }
      await store.closeSession(id, clock.now().toISOString())
      // The shell state on the node goes too; a node that cannot be reached keeps it until it reboots.
      if (s.node && deps.targets) {
        const target = deps.targets.resolve(s.node)
        if (target) {
          const r = await deps.targets.executor.exec(
            target,
            `rm -rf -- /run/chimera/api-sessions/${shq(id)} "\${XDG_RUNTIME_DIR:-$HOME/.cache}/chimera/api-sessions/"${shq(id)}`,
            { timeoutMs: 10_000 },
          )
          if (!r.ok) log.warn("session state not removed from node", { session: id, node: s.node, error: r.failure })
        }
      }
      return { success: true, message: "Session closed successfully" }
    },

    run(principal: UserPrincipal, input: RunCommandInput): Promise<CommandResult> {
      return serially(input.sessionId ?? null, () => runOne(principal, input))
    },
  }

  async function runOne(principal: UserPrincipal, input: RunCommandInput): Promise<CommandResult> {
    const session = input.sessionId === undefined ? null : await ownSession(principal, input.sessionId)
    input.charge?.(session?.id ?? null)
    const nodeName = input.node ?? session?.node
    if (nodeName === undefined || nodeName === null)
      throw invalid("name the node to run on: `node` (a name from [fleet.nodes]), or a session created with one", {
        path: ["node"],
      })
    if (session?.node && input.node !== undefined && input.node !== session.node)
      throw invalid(`session ${session.id} runs on node ${session.node}, not ${input.node}`, { path: ["node"] })
    const configured = resolveNode(nodeName)
    const risk = checkCommandRisk(principal.role, input.command)
    // Another login may hold more power than the configured one (root, or a sudoer): only for admins.
    if (input.username !== undefined && input.username !== configured.user && !can(principal.role, "commands:run-high"))
      throw forbidden(
        `logging in as ${input.username} instead of node ${nodeName}'s configured user ${configured.user} needs the commands:run-high permission (role admin)`,
      )
    const target = input.username === undefined ? configured : { ...configured, user: input.username }
    const timeoutSeconds = timeoutFor(input.command, input.timeout)

    const script = commandScript({
      command: input.command,
      sessionId: session?.id,
      sudo: input.sudoPassword !== undefined,
    })
    const t0 = performance.now()
    const r = await targetsOrThrow().executor.exec(target, script, {
      timeoutMs: timeoutSeconds * 1000,
      stdin: input.sudoPassword === undefined ? "" : `${input.sudoPassword}\n`,
      stopOnNode: true,
    })
    const executionTime = Math.round(performance.now() - t0) / 1000
    // What the command printed may echo the password it was given (`echo $x`, a verbose sudo).
    const scrub = (text: string) => (input.sudoPassword ? text.split(input.sudoPassword).join(REDACTED) : text)
    const { stdout, cwd } = splitCwd(r.stdout)
    const exitCode = r.failure ? null : r.exitCode
    const result: CommandResult = {
      success: r.ok,
      exit_code: exitCode,
      stdout: scrub(stdout),
      stderr: scrub(r.failure ? [r.stderr, r.failure.message].filter(Boolean).join("\n") : r.stderr),
      command: input.command,
      execution_time: executionTime,
      metadata: {
        node: nodeName,
        session_id: session?.id ?? null,
        risk_level: risk,
        current_directory: cwd,
        ...(r.failure ? { failure: { kind: r.failure.kind, message: scrub(r.failure.message) } } : {}),
      },
    }
    // The first command of a session created without a node binds it to this one.
    if (session) {
      await store.recordRun(
        session.id,
        {
          at: clock.now().toISOString(),
          node: nodeName,
          // History keeps what was run, not a password typed into it (`PGPASSWORD=… psql`).
          command: redactText(input.command),
          exitCode,
          success: r.ok,
          executionTime,
          risk,
          requestId: input.requestId,
        },
        cwd,
      )
    }
    return result
  }
}

export type CommandService = ReturnType<typeof createCommandService>
