// The CLI sessions this control plane holds, in memory (cli-sessions.ts builds the use cases on them):
// each session's owner, status, activity counters, bounded history, command queue and the listeners
// of its WebSocket. A change of status is told to the session's listeners, its end last of all;
// a ready session unused for five minutes shows as idle; an ended session stays for its owner to read
// until MAX_ENDED newer ones have ended, and is then forgotten. Nothing here outlives the process.
import type { SessionId } from "../../protocol/ids.ts"
import { createHistory, type History, type HistoryEntry } from "./cli-history.ts"
import type { ProviderName } from "./cli-providers.ts"
import type { CliSessionStatus, NewCliSession, SessionEvent } from "./cli-session-model.ts"
import type { Clock } from "./ports.ts"

export interface Session {
  id: SessionId
  provider: ProviderName
  mode: NewCliSession["mode"]
  model: string | null
  fullAccess: boolean
  cwd: string
  metadata: Record<string, unknown>
  owner: { subject: string; name: string }
  status: CliSessionStatus
  createdAt: Date
  lastActivity: Date
  messagesExchanged: number
  bytesTransferred: number
  history: History
  /** Commands run one after another, as a shell would: each waits for the one before. */
  queue: Promise<unknown>
  pending: number
  listeners: Set<(e: SessionEvent) => void>
}

/** What the opener of a session decides; the rest starts the same for every session. */
export type NewSession = Pick<
  Session,
  "id" | "provider" | "mode" | "model" | "fullAccess" | "cwd" | "metadata" | "owner"
>

const IDLE_AFTER_MS = 5 * 60_000
/** Terminated sessions kept for their owner to read, beyond which the oldest are forgotten. */
const MAX_ENDED = 100

export function createSessionTable(clock: Clock) {
  const sessions = new Map<SessionId, Session>()

  const live = () => [...sessions.values()].filter((s) => s.status !== "terminated")
  const emit = (s: Session, e: SessionEvent) => {
    for (const l of s.listeners) l(e)
  }
  const setStatus = (s: Session, status: CliSessionStatus) => {
    if (s.status === status || s.status === "terminated") return
    s.status = status
    emit(s, { kind: "status", status })
  }
  const shownStatus = (s: Session): CliSessionStatus =>
    s.status === "ready" && clock.now().getTime() - s.lastActivity.getTime() > IDLE_AFTER_MS ? "idle" : s.status

  function end(s: Session) {
    if (s.status === "terminated") return
    s.status = "terminated"
    s.lastActivity = clock.now()
    emit(s, { kind: "terminated" })
    s.listeners.clear()
    const ended = [...sessions.values()].filter((x) => x.status === "terminated")
    for (const old of ended.slice(0, Math.max(0, ended.length - MAX_ENDED))) sessions.delete(old.id)
  }

  const summary = (s: Session) => ({
    sessionId: s.id,
    provider: s.provider,
    cli_tool: s.provider,
    mode: s.mode,
    model: s.model,
    full_access: s.fullAccess,
    owner: s.owner.name,
    cwd: s.cwd,
    status: shownStatus(s),
    createdAt: s.createdAt.toISOString(),
    lastActivity: s.lastActivity.toISOString(),
    metadata: s.metadata,
  })

  function record(s: Session, type: HistoryEntry["type"], content: string, metadata?: Record<string, unknown>) {
    s.lastActivity = clock.now()
    s.messagesExchanged++
    s.bytesTransferred += Buffer.byteLength(content)
    return s.history.add(type, s.lastActivity, content, metadata)
  }

  /** A new session, initializing, with nothing run and nobody listening yet; it is in the table. */
  function add(fields: NewSession): Session {
    const now = clock.now()
    const s: Session = {
      ...fields,
      status: "initializing",
      createdAt: now,
      lastActivity: now,
      messagesExchanged: 0,
      bytesTransferred: 0,
      history: createHistory(),
      queue: Promise.resolve(),
      pending: 0,
      listeners: new Set(),
    }
    sessions.set(s.id, s)
    return s
  }

  return { sessions, live, setStatus, shownStatus, end, summary, record, add }
}
