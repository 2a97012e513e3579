// ServiceNow through its Table API, with basic auth: an incident per Chimera incident (POST
// /api/now/table/incident, answered 201 with result.sys_id and result.number), work notes as it
// changes (PATCH work_notes), and on recovery state 6 (Resolved) with a close code and close notes.
// The incident carries correlation_id "chimera-<id>", and `create` looks for it before making one: a
// retry after a lost answer finds the incident the first attempt made rather than opening a second.
// ServiceNow answers errors as {error: {message, detail}, status: "failure"}: 401 for a refused login,
// 403 for a missing role, 404 "No Record found".
import type { DeliveryResult, Notice, TicketLookup, TicketSystem } from "../../domain/notifications.ts"
import { basicAuth, exchange, failure, type HttpAnswer, type HttpCall, type HttpOptions, isFailure } from "./http.ts"
import { clip, headline, plainText } from "./notice-text.ts"

export interface ServiceNowSettings {
  url: string
  username: string
  password: string
  closeCode: string
}

/** Urgency and impact (1 high, 2 medium, 3 low) give ServiceNow's priority. */
const LEVEL: Record<Notice["severity"], string> = { critical: "1", warning: "2", info: "3" }
const STATE: Record<string, string> = {
  "1": "New",
  "2": "In Progress",
  "3": "On Hold",
  "6": "Resolved",
  "7": "Closed",
  "8": "Canceled",
}
const FIELDS = "sys_id,number,state"

interface Record_ {
  sys_id: string
  number: string
  state: string
}

// Only characters with no meaning in an encoded query (where ^ joins conditions), so the lookup by
// correlation id matches exactly this incident.
export const correlationId = (notice: Notice) =>
  clip(`chimera-${notice.incidentId.replace(/[^A-Za-z0-9._-]/g, "_")}`, 100)

export function createServiceNow(settings: ServiceNowSettings, options: HttpOptions): TicketSystem {
  const base = `${settings.url.replace(/\/+$/, "")}/api/now/table/incident`
  const call = (method: HttpCall["method"], path: string, body?: unknown): HttpCall => ({
    channel: "servicenow",
    method,
    url: `${base}${path}`,
    headers: { authorization: basicAuth(settings.username, settings.password) },
    body,
    secrets: [settings.password, basicAuth(settings.username, settings.password).slice(6)],
  })
  // An operation of several requests (a create looks first) ends within one timeout.
  const send = async (
    c: HttpCall,
    expect: number[],
    signal = AbortSignal.timeout(options.timeoutMs),
  ): Promise<Record_ | DeliveryResult> => {
    const answer = await exchange(c, options, signal)
    if (isFailure(answer)) return answer
    if (!expect.includes(answer.status)) return failure(c, answer, _reason(answer), options)
    const result = (answer.json as { result?: unknown } | undefined)?.result
    const record = Array.isArray(result) ? result[0] : result
    if (Array.isArray(result) && result.length === 0) return { ok: true }
    if (!_isRecord(record))
      return { ok: false, retryable: true, error: "servicenow: the answer had no result with sys_id and number" }
    return record
  }
  const done = (r: Record_ | DeliveryResult): DeliveryResult =>
    "sys_id" in r ? { ok: true, externalId: r.sys_id, label: r.number, url: _link(settings.url, r.sys_id) } : r

  return {
    name: "servicenow",
    async create(notice) {
      const query = new URLSearchParams({
        sysparm_query: `correlation_id=${correlationId(notice)}`,
        sysparm_fields: FIELDS,
        sysparm_limit: "1",
      })
      const signal = AbortSignal.timeout(options.timeoutMs)
      const found = await send(call("GET", `?${query}`), [200], signal)
      if ("sys_id" in found || !found.ok) return done(found)
      return done(
        await send(
          call("POST", `?sysparm_fields=${FIELDS}`, {
            short_description: clip(_noCodeTags(headline(notice)), 160),
            description: _noCodeTags(plainText(notice)),
            urgency: LEVEL[notice.severity],
            impact: LEVEL[notice.severity],
            correlation_id: correlationId(notice),
            correlation_display: "Chimera",
          }),
          [201, 200],
          signal,
        ),
      )
    },
    async update(ticketId, notice) {
      const body = { work_notes: _noCodeTags(`${headline(notice)}\n\n${plainText(notice)}`) }
      return done(await send(call("PATCH", `/${_id(ticketId)}?sysparm_fields=${FIELDS}`, body), [200]))
    },
    async resolve(ticketId, notice) {
      const body = {
        state: "6",
        close_code: settings.closeCode,
        close_notes: _noCodeTags(`${headline(notice)}\n\n${plainText(notice)}`),
      }
      return done(await send(call("PATCH", `/${_id(ticketId)}?sysparm_fields=${FIELDS}`, body), [200]))
    },
    async check() {
      // Listing one incident needs the same read access on the table as the lookups before a create;
      // a single record's 404 could not tell a missing role from a missing record.
      const c = call("GET", "?sysparm_limit=1&sysparm_fields=sys_id")
      const answer = await exchange(c, options)
      if (isFailure(answer)) return answer
      if (answer.status === 200) return { ok: true }
      const hint = answer.status === 403 ? "the user needs read and write access to the incident table (role itil)" : ""
      return failure(c, answer, _reason(answer), options, hint)
    },
    async get(ticketId): Promise<TicketLookup> {
      const c = call("GET", `/${_id(ticketId)}?sysparm_fields=${FIELDS}`)
      const answer = await exchange(c, options)
      if (isFailure(answer)) return answer
      if (answer.status === 404) return { ok: true, ticket: null }
      const record = (answer.json as { result?: unknown } | undefined)?.result
      if (answer.status !== 200) return failure(c, answer, _reason(answer), options)
      if (!_isRecord(record))
        return { ok: false, retryable: true, error: "servicenow: the answer had no result with sys_id and number" }
      const status = STATE[record.state] ?? `state ${record.state}`
      return {
        ok: true,
        ticket: {
          id: record.sys_id,
          label: record.number,
          status,
          resolved: ["6", "7", "8"].includes(record.state),
          url: _link(settings.url, record.sys_id),
        },
      }
    },
  }
}

/**
 * ServiceNow shows what lies between `[code]` and `[/code]` in a journal field (work notes) as HTML
 * (glide.ui.security.allow_codetag, on by default), and a notice carries a node's own words: its
 * tags become parentheses, so a node's link or form never passes for the ticket's own.
 */
const _noCodeTags = (text: string) => text.replace(/\[(\s*\/?\s*code\s*)\]/gi, "($1)")

// A sys_id is 32 hex digits; anything else is encoded, so a stored id cannot change the path.
const _id = (ticketId: string) => encodeURIComponent(ticketId)

const _link = (url: string, sysId: string) =>
  `${url.replace(/\/+$/, "")}/nav_to.do?uri=${encodeURIComponent(`incident.do?sys_id=${sysId}`)}`

function _isRecord(value: unknown): value is Record_ {
  const r = value as Partial<Record_> | null | undefined
  return typeof r?.sys_id === "string" && typeof r.number === "string" && typeof r.state === "string"
}

function _reason(answer: HttpAnswer): string {
  const error = (answer.json as { error?: { message?: unknown; detail?: unknown } } | undefined)?.error
  if (!error) return answer.text // clipped by failure(), once scrubbed
  return [error.message, error.detail].filter((s) => typeof s === "string" && s !== "").join(": ")
}
