// The audit trail: one append-only entry per mutating request and per command run, saying who (and
// in which role), from where, on which node, what, with which result, when, under which request id.
// Details pass through the logger's `redact` before they are stored, so a password, token or sudo
// password sent in a request never reaches the table. The API records requests (api/audit-trail.ts);
// whatever runs commands on nodes (exec, MCP, chat, RPC) calls `recordCommand`.
import { z } from "zod"
import { NodeId } from "../../../protocol/ids.ts"
import { createLogger, redact } from "../../../protocol/log.ts"
import type { Clock } from "../ports.ts"
import type { AuditQuery, AuditResult, AuthStorePort, NewAuditRecord } from "./ports.ts"

const log = createLogger("audit")

/** Details are kept small: an audit row says what was asked, not every byte of it. */
const MAX_DETAIL_CHARS = 4096

export const AuditFilter = z
  .object({
    actor: z.string().max(128).optional(),
    node: NodeId.optional(),
    action: z.string().max(200).optional(),
    result: z.enum(["ok", "denied", "rate-limited", "failed"]).optional(),
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

export function createAudit({ store, clock }: { store: AuthStorePort; clock: Clock }) {
  const append = async (entry: Omit<NewAuditRecord, "at"> & { at?: string }) => {
    const record: NewAuditRecord = {
      ...entry,
      at: entry.at ?? clock.now().toISOString(),
      path: entry.path.slice(0, 500),
      action: entry.action.slice(0, 200),
      command: entry.command === null ? null : (redact(entry.command) as string).slice(0, 4096),
      detail: boundedDetail(entry.detail),
    }
    try {
      await store.appendAudit(record)
    } catch (error) {
      // The request has happened; losing its audit row is an operator alarm, not the caller's 500.
      log.error("audit entry not stored", { error, requestId: record.requestId, action: record.action })
    }
  }

  return {
    record: append,
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
    list: (f: AuditFilter) => {
      const query: AuditQuery = {
        actor: f.actor,
        nodeId: f.node,
        action: f.action,
        result: f.result,
        since: f.since,
        until: f.until,
        afterId: f.after,
        limit: f.limit,
      }
      return store.listAudit(query)
    },
  }
}

export type Audit = ReturnType<typeof createAudit>
