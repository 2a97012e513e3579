// Refused requests: counted, and summarised in the audit log instead of stored one by one. Anyone can
// send refused requests as fast as the network allows (no credential, a made-up token, a 429 after the
// limit), and a row per request would let them grow the append-only audit log without bound. So for
// each source address and route, the first refusal of a window is its own audit row (an investigation
// sees at once that someone knocked), the rest of that window are only counted, and when the window ends
// one summary row says how many there were: "N refused requests from S to R in the last minute".
//
// The counters (`counts()`) are in-process totals since start, by result and by route, for a metrics
// endpoint to expose. Memory is bounded: past MAX_KEYS windows open at once, further sources share one.
import { randomUUID } from "node:crypto"
import { createLogger } from "../../protocol/log.ts"
import type { Audit } from "../domain/auth/audit.ts"
import type { AuditResult } from "../domain/auth/ports.ts"
import type { Clock } from "../domain/ports.ts"

const log = createLogger("refusals")

/** Distinct (source, route, actor) windows kept at once; past it, new sources are counted as one. */
export const MAX_KEYS = 10_000
const MANY_SOURCES = "(many sources)"
/** Distinct typed usernames a login summary names (each already shaped like a username or masked). */
const MAX_NAMES = 10

/** A request that was refused: what its audit row, or its share of a summary, says. */
export interface RefusedRequest {
  requestId: string
  actor: string
  role: string | null
  source: string | null
  method: string
  path: string
  /** The route's key (`POST /api/agent/enroll`), or `POST (no route)`. */
  action: string
  nodeId: string | null
  status: number
  result: AuditResult
  /** A username a login named, as it may be shown (shownUsername). */
  username?: string
  /** Why it was refused (the answer's error code). */
  code?: string
}

interface Window {
  first: RefusedRequest
  startedAtMs: number
  count: number
  statuses: Record<string, number>
  usernames: Set<string>
}

export interface RefusalCounts {
  total: number
  byResult: Partial<Record<AuditResult, number>>
  byRoute: Record<string, number>
}

export function createRefusals({ audit, clock, windowMs = 60_000 }: { audit: Audit; clock: Clock; windowMs?: number }) {
  const windows = new Map<string, Window>()
  const counts: RefusalCounts = { total: 0, byResult: {}, byRoute: {} }

  const summarise = (w: Window) => {
    const f = w.first
    const minutes = windowMs % 60_000 === 0 ? `${windowMs / 60_000} min` : `${windowMs / 1000} s`
    return audit.record({
      requestId: `summary-${randomUUID()}`,
      actor: f.actor,
      role: f.role,
      source: f.source,
      method: f.method,
      path: f.path,
      action: f.action,
      nodeId: null,
      command: null,
      status: f.status,
      result: f.result,
      detail: {
        summary: `${w.count} refused requests from ${f.source ?? "an unknown source"} to ${f.action} in ${minutes} from ${new Date(w.startedAtMs).toISOString()} (the first is its own entry)`,
        refused: w.count,
        statuses: w.statuses,
        ...(w.usernames.size > 0 ? { usernames: [...w.usernames] } : {}),
      },
    })
  }

  /** Ends the windows that are over (all of them when `all`), writing a summary where one is due. */
  const flush = async (all = false) => {
    const nowMs = clock.now().getTime()
    const due: Window[] = []
    for (const [key, w] of windows) {
      if (!all && nowMs - w.startedAtMs < windowMs) continue
      windows.delete(key)
      if (w.count > 1) due.push(w)
    }
    for (const w of due) await summarise(w)
  }
  let flushedAtMs = 0
  const flushDue = () => {
    const nowMs = clock.now().getTime()
    if (nowMs - flushedAtMs < Math.min(windowMs, 1000)) return
    flushedAtMs = nowMs
    flush().catch((error) => log.error("refusal summaries not written", { error }))
  }
  const timer = setInterval(flushDue, Math.min(windowMs, 10_000))
  timer.unref?.()

  return {
    /** Counts a refused request; writes its audit row when it is the first of its window. */
    async note(r: RefusedRequest): Promise<void> {
      counts.total++
      counts.byResult[r.result] = (counts.byResult[r.result] ?? 0) + 1
      counts.byRoute[r.action] = (counts.byRoute[r.action] ?? 0) + 1
      flushDue()
      const source = r.source ?? "local"
      // Callers with no credential share their address's window, whatever username they typed.
      let key = `${source}\u0000${r.action}\u0000${r.role === null ? "" : r.actor}`
      if (!windows.has(key) && windows.size >= MAX_KEYS) key = `${MANY_SOURCES}\u0000${r.action}`
      const w = windows.get(key)
      if (w) {
        w.count++
        w.statuses[r.status] = (w.statuses[r.status] ?? 0) + 1
        if (r.username !== undefined && w.usernames.size < MAX_NAMES) w.usernames.add(r.username)
        return
      }
      const shared = key.startsWith(MANY_SOURCES)
      const first = shared ? { ...r, source: MANY_SOURCES } : r
      windows.set(key, {
        first,
        startedAtMs: clock.now().getTime(),
        count: 1,
        statuses: { [r.status]: 1 },
        usernames: new Set(r.username === undefined ? [] : [r.username]),
      })
      await audit.record({
        ...first,
        command: null,
        detail: { refused: 1, ...(r.code === undefined ? {} : { code: r.code }) },
      })
    },
    counts: (): RefusalCounts => ({
      total: counts.total,
      byResult: { ...counts.byResult },
      byRoute: { ...counts.byRoute },
    }),
    /** Windows open now (for tests of the memory bound). */
    openWindows: () => windows.size,
    flush,
    /** Writes what is still counted and stops the timer (the control plane is stopping). */
    async close() {
      clearInterval(timer)
      await flush(true)
    },
  }
}

export type Refusals = ReturnType<typeof createRefusals>
