// Jira Cloud through REST API v3, with basic auth (the account's email and an API token): an issue per
// incident in the configured project (POST /rest/api/3/issue, answered 201 {id, key}), a comment as it
// changes, and on recovery a comment and the transition into Done (GET …/transitions, then POST the
// one named in config, or the first whose target is in the Done category). Texts are Atlassian
// Document Format, as v3 requires. Each issue carries the label "chimera-<id>", and `create` searches
// for it first, so a retry after a lost answer finds the issue the first attempt made. Jira answers
// errors as {errorMessages[], errors{field: message}}; 401 for a refused token, 404 for an issue that
// does not exist or is hidden from this account.
import type { DeliveryResult, Notice, TicketLookup, TicketSystem } from "../../domain/notifications.ts"
import { basicAuth, exchange, failure, type HttpAnswer, type HttpCall, type HttpOptions, isFailure } from "./http.ts"
import { clip, facts, headline } from "./notice-text.ts"

export interface JiraSettings {
  url: string
  username: string
  apiToken: string
  projectKey: string
  issueType: string
  /** The transition that closes an issue, by name; "" for the first one into the Done category. */
  doneTransition: string
}

interface Transition {
  id: string
  name: string
  to?: { name?: string; statusCategory?: { key?: string } }
}
interface Issue {
  id: string
  key: string
  fields?: { status?: { name?: string; statusCategory?: { key?: string } } }
}

export const incidentLabel = (notice: Notice) =>
  `chimera-${notice.incidentId.replace(/[^A-Za-z0-9_-]/g, "_")}`.slice(0, 255)

export function createJira(settings: JiraSettings, options: HttpOptions): TicketSystem {
  const base = `${settings.url.replace(/\/+$/, "")}/rest/api/3`
  const auth = basicAuth(settings.username, settings.apiToken)
  const call = (method: HttpCall["method"], path: string, body?: unknown): HttpCall => ({
    channel: "jira",
    method,
    url: `${base}${path}`,
    headers: { authorization: auth },
    body,
    secrets: [settings.apiToken, auth.slice(6)],
  })
  // Each operation, however many requests it makes, ends within one timeout.
  const deadline = () => AbortSignal.timeout(options.timeoutMs)
  const send = async (c: HttpCall, expect: number[], signal: AbortSignal): Promise<HttpAnswer | DeliveryResult> => {
    const answer = await exchange(c, options, signal)
    if (isFailure(answer)) return answer
    return expect.includes(answer.status) ? answer : failure(c, answer, _reason(answer), options, _hint(answer))
  }
  const browse = (key: string) => `${settings.url.replace(/\/+$/, "")}/browse/${encodeURIComponent(key)}`
  const issuePath = (key: string) => `/issue/${encodeURIComponent(key)}`
  const comment = async (key: string, notice: Notice, signal: AbortSignal) => {
    const answer = await send(call("POST", `${issuePath(key)}/comment`, { body: adf(notice) }), [201], signal)
    return "ok" in answer ? answer : ({ ok: true, externalId: key, label: key, url: browse(key) } as const)
  }
  const lookup = async (key: string, signal: AbortSignal): Promise<TicketLookup> => {
    const answer = await send(call("GET", `${issuePath(key)}?fields=status`), [200, 404], signal)
    if ("ok" in answer) return answer as TicketLookup
    if (answer.status === 404) return { ok: true, ticket: null }
    const issue = answer.json as Issue
    const status = issue.fields?.status
    return {
      ok: true,
      ticket: {
        id: issue.key,
        label: issue.key,
        status: status?.name ?? "unknown",
        resolved: status?.statusCategory?.key === "done",
        url: browse(issue.key),
      },
    }
  }

  return {
    name: "jira",
    async create(notice) {
      const signal = deadline()
      const jql = `project = "${_jql(settings.projectKey)}" AND labels = "${incidentLabel(notice)}"`
      const query = new URLSearchParams({ jql, fields: "status" })
      const search = await send(call("GET", `/search/jql?${query}`), [200], signal)
      if ("ok" in search) return search
      const [existing] = ((search.json as { issues?: Issue[] } | undefined)?.issues ?? []).filter((i) => i?.key)
      if (existing) return { ok: true, externalId: existing.key, label: existing.key, url: browse(existing.key) }
      const made = await send(
        call("POST", "/issue", {
          fields: {
            project: { key: settings.projectKey },
            issuetype: { name: settings.issueType },
            summary: clip(headline(notice), 255),
            description: adf(notice),
            labels: ["chimera", incidentLabel(notice)],
          },
        }),
        [201],
        signal,
      )
      if ("ok" in made) return made
      const key = (made.json as Partial<Issue> | undefined)?.key
      if (typeof key !== "string") return { ok: false, retryable: true, error: "jira: the answer had no issue key" }
      return { ok: true, externalId: key, label: key, url: browse(key) }
    },
    update: (ticketId, notice) => comment(ticketId, notice, deadline()),
    async check(): Promise<DeliveryResult> {
      const key = settings.projectKey
      const answer = await send(call("GET", `/project/${encodeURIComponent(key)}`), [200, 404], deadline())
      if ("ok" in answer) return answer
      if (answer.status === 404)
        return {
          ok: false,
          retryable: false,
          error: `jira: no project ${key} visible to this account: check itsm.project_key`,
        }
      const types = ((answer.json as { issueTypes?: { name?: unknown }[] } | undefined)?.issueTypes ?? [])
        .map((t) => t.name)
        .filter((n): n is string => typeof n === "string")
      if (types.length > 0 && !types.some((t) => t.toLowerCase() === settings.issueType.toLowerCase()))
        return {
          ok: false,
          retryable: false,
          error: `jira: project ${key} has no issue type "${settings.issueType}" (it has: ${types.join(", ")}): set itsm.issue_type`,
        }
      return { ok: true }
    },
    async resolve(ticketId, notice): Promise<DeliveryResult> {
      // Already done (a retry, or someone closed it by hand): say so once, transition nothing.
      const signal = deadline()
      const now = await lookup(ticketId, signal)
      if (!now.ok) return now
      if (now.ticket === null) return { ok: false, retryable: false, error: `jira: issue ${ticketId} not found` }
      if (now.ticket.resolved) return { ok: true, externalId: ticketId, label: ticketId, url: now.ticket.url }
      // The transition is found before the comment is written, so an issue that cannot be closed
      // (a final error) is not also commented on at every attempt.
      const listed = await send(call("GET", `${issuePath(ticketId)}/transitions`), [200], signal)
      if ("ok" in listed) return listed
      const transitions = (listed.json as { transitions?: Transition[] } | undefined)?.transitions ?? []
      const wanted = settings.doneTransition.toLowerCase()
      const done = transitions.find((t) =>
        wanted !== "" ? t.name.toLowerCase() === wanted : t.to?.statusCategory?.key === "done",
      )
      if (!done) {
        const names = transitions.map((t) => t.name).join(", ") || "none"
        const which = wanted !== "" ? `"${settings.doneTransition}"` : "into Done"
        return {
          ok: false,
          retryable: false,
          error: `jira: ${ticketId} has no transition ${which} from ${now.ticket.status} (it has: ${names}); set itsm.done_transition`,
        }
      }
      const noted = await comment(ticketId, notice, signal)
      if (!noted.ok) return noted
      const moved = await send(
        call("POST", `${issuePath(ticketId)}/transitions`, { transition: { id: done.id } }),
        [204],
        signal,
      )
      return "ok" in moved ? moved : { ok: true, externalId: ticketId, label: ticketId, url: browse(ticketId) }
    },
    get: (ticketId) => lookup(ticketId, deadline()),
  }
}

/** The notice as an Atlassian Document Format document: the message, then the facts as a list. */
export function adf(notice: Notice) {
  const text = (t: string) => ({ type: "text", text: t })
  const paragraph = (...content: unknown[]) => ({ type: "paragraph", content })
  const items = facts(notice).map(([label, value]) => {
    const shown =
      label === "Dashboard" && /^https?:\/\//.test(value)
        ? { type: "text", text: value, marks: [{ type: "link", attrs: { href: value } }] }
        : text(value || "-")
    return { type: "listItem", content: [paragraph({ ...text(`${label}: `), marks: [{ type: "strong" }] }, shown)] }
  })
  const content: unknown[] = [paragraph({ ...text(headline(notice)), marks: [{ type: "strong" }] })]
  // ADF refuses empty text nodes, so an empty message is left out rather than sent as "".
  // A line break inside a text node is not one in ADF: lines are joined by hardBreak nodes.
  const lines = notice.message.trim().split(/\r?\n/)
  const message = lines.flatMap((line, i) => [...(i > 0 ? [{ type: "hardBreak" }] : []), ...(line ? [text(line)] : [])])
  if (message.some((n) => n.type === "text")) content.push(paragraph(...message))
  content.push({ type: "bulletList", content: items })
  return { type: "doc", version: 1, content }
}

const _jql = (value: string) => value.replace(/["\\]/g, "\\$&")

function _reason(answer: HttpAnswer): string {
  const body = answer.json as { errorMessages?: unknown; errors?: unknown } | undefined
  if (!body || typeof body !== "object") return answer.text // clipped by failure(), once scrubbed
  const messages = Array.isArray(body.errorMessages) ? body.errorMessages.filter((m) => typeof m === "string") : []
  const fields =
    body.errors && typeof body.errors === "object"
      ? Object.entries(body.errors as Record<string, unknown>).map(([field, m]) => `${field}: ${String(m)}`)
      : []
  return [...messages, ...fields].join("; ")
}

function _hint(answer: HttpAnswer): string {
  if (answer.status === 401) return "check itsm.username (the account's email) and itsm.api_key (an API token)"
  if (answer.status === 403) return "the account lacks permission in this project"
  return ""
}
