// The audit trail: one append-only entry per mutating request and per command run, saying who (and
// in which role), from where, on which node, what, with which result, when, under which request id.
// Details pass through the logger's `redact` before they are stored, so a password, token or sudo
// password sent in a request never reaches the table. The API records requests (api/audit-trail.ts);
// whatever runs commands on nodes (exec, MCP, chat, RPC) calls `recordCommand`.
//
// Auditing fails closed. An action's row is written *before* the action (`begin`, result `started`);
// when that write fails (a full disk, a read-only or broken database) the action is not performed and
// the caller gets 503 AUDIT_UNAVAILABLE. What the action came to is appended afterwards (`finish`), so
// the log is never updated in place. Rows written after the fact (`record`: refusals, which perform
// nothing) can only be logged when they fail.
import { z } from "zod"
import { NodeId } from "../../../protocol/ids.ts"
import { createLogger, redact } from "../../../protocol/log.ts"
import { ChimeraError } from "../errors.ts"
import type { Clock } from "../ports.ts"
import type { AuditQuery, AuditResult, AuthStorePort, NewAuditRecord } from "./ports.ts"

const log = createLogger("audit")

/** The actor of a refused request that named no one: no user or token goes by it. */
export const ANONYMOUS_ACTOR = "anonymous"

/** Details are kept small: an audit row says what was asked, not every byte of it. */
const MAX_DETAIL_CHARS = 4096

export const AuditFilter = z
  .object({
    actor: z.string().max(128).optional(),
    node: NodeId.optional(),
    action: z.string().max(200).optional(),
    result: z.enum(["ok", "denied", "rate-limited", "failed", "started"]).optional(),
    since: z.iso.datetime().optional(),
    until: z.iso.datetime().optional(),
    after: z.coerce.number().int().min(0).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  })
  .strict()
export type AuditFilter = z.infer<typeof AuditFilter>

export function resultOf(status: number): AuditResult {
  if (status < 400) return "ok"
  if (status === 401 || status === 403) return "denied"
  if (status === 429) return "rate-limited"
  return "failed"
}

function boundedDetail(detail: unknown): unknown {
  if (detail === undefined || detail === null) return null
  const clean = redact(detail)
  const text = JSON.stringify(clean)
  return text.length <= MAX_DETAIL_CHARS ? clean : { truncated: true, preview: text.slice(0, MAX_DETAIL_CHARS) }
}

export interface CommandRun {
  requestId: string
  actor: string
  role: string | null
  source: string | null
  nodeId: string
  command: string
  status: number
  detail?: unknown
}

/** An action's row, written before it ran; `finish` appends what it came to. */
export interface AuditTicket {
  id: number
  finish(outcome: { status: number; result?: AuditResult; nodeId?: string | null; detail?: unknown }): Promise<void>
}

type Entry = Omit<NewAuditRecord, "at"> & { at?: string }

/**
 * PostgreSQL's TEXT refuses NUL. A request's path is stored as Hono decodes it, so `/api/nodes/a%00`
 * (or a command or reported target holding one) made its row fail: an admitted action a 503, and a
 * refused one no row, nor a summary for the rest of its window. Stored with U+FFFD instead.
 */
const storable = (s: string) => (s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s)

export function createAudit({ store, clock }: { store: AuthStorePort; clock: Clock }) {
  const prepare = (entry: Entry): NewAuditRecord => ({
    ...entry,
    at: entry.at ?? clock.now().toISOString(),
    actor: storable(entry.actor),
    path: storable(entry.path.slice(0, 500)),
    action: storable(entry.action.slice(0, 200)),
    nodeId: entry.nodeId === null ? null : storable(entry.nodeId),
    command: entry.command === null ? null : storable((redact(entry.command) as string).slice(0, 4096)),
    detail: boundedDetail(entry.detail),
  })
  const append = async (entry: Entry) => {
    const record = prepare(entry)
    try {
      await store.appendAudit(record)
    } catch (error) {
      // Nothing was performed (a refusal) or it already happened: an operator alarm, not the caller's 500.
      log.error("audit entry not stored", { error, requestId: record.requestId, action: record.action })
    }
  }

  /** Writes the row of an action about to run; throws AUDIT_UNAVAILABLE (503) when it cannot be stored. */
  const begin = async (entry: Omit<Entry, "status" | "result">): Promise<AuditTicket> => {
    const record = prepare({ ...entry, status: 0, result: "started" })
    let id: number
    try {
      id = await store.appendAudit(record)
    } catch (error) {
      log.error("audit entry not stored; the action is refused", {
        error,
        requestId: record.requestId,
        action: record.action,
      })
      throw new ChimeraError(
        "AUDIT_UNAVAILABLE",
        "the audit log cannot be written (is the control plane's disk full or its database read-only?); nothing was done, try again once it is fixed",
      )
    }
    return {
      id,
      async finish(o) {
        try {
          await store.appendAuditOutcome(id, {
            at: clock.now().toISOString(),
            status: o.status,
            result: o.result ?? resultOf(o.status),
            nodeId: o.nodeId ?? null,
            detail: boundedDetail(o.detail),
          })
        } catch (error) {
          // The action ran; its row says so (`started`), only what it came to is missing.
          log.error("audit outcome not stored", { error, requestId: record.requestId, action: record.action })
        }
      },
    }
  }

  return {
    record: append,
    begin,
    /** A command run on a node, from whichever door it came through. */
    recordCommand: (run: CommandRun) =>
      append({
        ...run,
        method: "EXEC",
        path: `node:${run.nodeId}`,
        action: "command.run",
        result: resultOf(run.status),
        detail: run.detail ?? null,
      }),
    /** The row of a command about to run; AUDIT_UNAVAILABLE when it cannot be stored. */
    beginCommand: (run: Omit<CommandRun, "status">) =>
      begin({ ...run, method: "EXEC", path: `node:${run.nodeId}`, action: "command.run", detail: run.detail ?? null }),
    /** The first `limit` entries that match, or with `tail` the last `limit`; oldest first either way. */
    list: (f: AuditFilter & { tail?: boolean }) => {
      const query: AuditQuery = {
        actor: f.actor,
        nodeId: f.node,
        action: f.action,
        result: f.result,
        since: f.since,
        until: f.until,
        afterId: f.after,
        limit: f.limit,
        tail: f.tail,
      }
      return store.listAudit(query)
    },
  }
}

export type Audit = ReturnType<typeof createAudit>
