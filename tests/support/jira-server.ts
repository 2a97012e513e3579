// A local stand-in for Jira Cloud's REST API v3, checking what Jira checks: Basic auth with the
// account's email and API token (else 401), a known project and issue type, a one-line summary of at
// most 255 characters, descriptions and comments in Atlassian Document Format (else 400 with Jira's
// {errorMessages, errors} shape), labels without spaces, and transitions that exist from the issue's
// current status (To Do → In Progress → Done, or straight to Done). It serves the project (with its
// issue types), issue create and get, comments, transitions, and the JQL search by project and label.
import { basicCredentials, type FakeService, isJson, json, startFakeService } from "./fake-service.ts"

export interface JiraIssue {
  id: string
  key: string
  summary: string
  issueType: string
  labels: string[]
  description: unknown
  comments: unknown[]
  status: "To Do" | "In Progress" | "Done"
}

export interface JiraFake extends FakeService {
  email: string
  token: string
  project: string
  issues: Map<string, JiraIssue>
}

const CATEGORY = { "To Do": "new", "In Progress": "indeterminate", Done: "done" } as const
const TRANSITIONS = [
  { id: "11", name: "Start progress", to: "In Progress" as const },
  { id: "31", name: "Close issue", to: "Done" as const },
  { id: "41", name: "Reopen", to: "To Do" as const },
]
const notFound = () =>
  json(404, { errorMessages: ["Issue does not exist or you do not have permission to see it."], errors: {} })
const bad = (errors: Record<string, string>, errorMessages: string[] = []) => json(400, { errorMessages, errors })

export function startJira(
  email = "ops@example.org",
  token = "ATATT3xFfGF0-jira-api-token-value",
  project = "OPS",
): JiraFake {
  const issues = new Map<string, JiraIssue>()
  let next = 1
  const view = (i: JiraIssue) => ({
    id: i.id,
    key: i.key,
    fields: { status: { name: i.status, statusCategory: { key: CATEGORY[i.status] } }, summary: i.summary },
  })
  const fake = startFakeService((req) => {
    const creds = basicCredentials(req.headers.authorization)
    if (!creds || creds.user !== email || creds.password !== token)
      return json(401, { errorMessages: ["Client must be authenticated to access this resource."], errors: {} })
    const writes = req.method === "POST" || req.method === "PUT"
    if (writes && (!isJson(req.headers) || typeof req.body !== "object" || req.body === null))
      return json(415, { errorMessages: ["Unsupported Media Type"], errors: {} })
    const body = (req.body ?? {}) as Record<string, unknown>
    if (req.method === "GET" && req.path === "/rest/api/3/search/jql") {
      const jql = req.query.get("jql") ?? ""
      const m = /^project = "([^"]+)" AND labels = "([^"]+)"$/.exec(jql)
      if (!m) return bad({}, [`Error in the JQL Query: this stand-in understands project and labels only: ${jql}`])
      const found = [...issues.values()].filter((i) => i.key.startsWith(`${m[1]}-`) && i.labels.includes(m[2] ?? ""))
      return json(200, { issues: found.map(view), isLast: true })
    }
    const projectPath = /^\/rest\/api\/3\/project\/([^/]+)$/.exec(req.path)
    if (req.method === "GET" && projectPath) {
      if (decodeURIComponent(projectPath[1] ?? "") !== project)
        return json(404, { errorMessages: [`No project could be found with key '${projectPath[1]}'.`], errors: {} })
      return json(200, {
        id: "10000",
        key: project,
        name: "Operations",
        issueTypes: [
          { id: "10001", name: "Task" },
          { id: "10002", name: "Bug" },
        ],
      })
    }
    if (req.method === "POST" && req.path === "/rest/api/3/issue") {
      const f = (body.fields ?? {}) as Record<string, unknown>
      const errors: Record<string, string> = {}
      if ((f.project as { key?: unknown })?.key !== project) errors.project = "valid project is required"
      if ((f.issuetype as { name?: unknown })?.name !== "Task") errors.issuetype = "Specify a valid issue type"
      if (typeof f.summary !== "string" || f.summary.trim() === "")
        errors.summary = "You must specify a summary of the issue."
      else if (f.summary.length > 255) errors.summary = "Summary must be less than 255 characters."
      else if (/[\r\n]/.test(f.summary))
        errors.summary = "The summary is invalid because it contains newline characters."
      if (f.description !== undefined && !validAdf(f.description))
        errors.description = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
      const labels = f.labels ?? []
      if (!Array.isArray(labels) || labels.some((l) => typeof l !== "string" || /\s/.test(l) || l.length > 255))
        errors.labels = "Labels cannot contain spaces."
      if (Object.keys(errors).length > 0) return bad(errors)
      const issue: JiraIssue = {
        id: String(10000 + next),
        key: `${project}-${next++}`,
        summary: f.summary as string,
        issueType: "Task",
        labels: labels as string[],
        description: f.description,
        comments: [],
        status: "To Do",
      }
      issues.set(issue.key, issue)
      return json(201, { id: issue.id, key: issue.key, self: `${fake.url}/rest/api/3/issue/${issue.id}` })
    }
    const m = /^\/rest\/api\/3\/issue\/([^/]+)(\/comment|\/transitions)?$/.exec(req.path)
    const issue = m ? issues.get(decodeURIComponent(m[1] ?? "")) : undefined
    if (!m || !issue) return notFound()
    if (req.method === "GET" && !m[2]) return json(200, view(issue))
    if (req.method === "POST" && m[2] === "/comment") {
      if (!validAdf(body.body)) return bad({ comment: "Comment body is not valid Atlassian Document Format." })
      issue.comments.push(body.body)
      return json(201, { id: String(issue.comments.length), body: body.body })
    }
    const available = TRANSITIONS.filter((t) => t.to !== issue.status)
    if (req.method === "GET" && m[2] === "/transitions")
      return json(200, {
        transitions: available.map((t) => ({
          id: t.id,
          name: t.name,
          to: { name: t.to, statusCategory: { key: CATEGORY[t.to] } },
        })),
      })
    if (req.method === "POST" && m[2] === "/transitions") {
      const id = (body.transition as { id?: unknown })?.id
      const t = available.find((x) => x.id === id)
      if (!t) return bad({}, [`Transition id '${String(id)}' is not valid for this issue.`])
      issue.status = t.to
      return new Response(null, { status: 204 })
    }
    return json(405, { errorMessages: ["Method not allowed"], errors: {} })
  })
  return { ...fake, email, token, project, issues }
}

const INLINE = new Set(["text", "hardBreak", "mention", "emoji"])
const MARKS = new Set(["strong", "em", "code", "link", "strike", "underline"])

/** True for an ADF document whose nodes Jira would accept (the subset a notice uses, checked strictly). */
export function validAdf(doc: unknown): boolean {
  const d = doc as { type?: unknown; version?: unknown; content?: unknown }
  return d?.type === "doc" && d.version === 1 && Array.isArray(d.content) && d.content.every((n) => _block(n))
}

function _block(node: unknown): boolean {
  const n = node as { type?: string; content?: unknown[] }
  if (!Array.isArray(n?.content)) return false
  if (n.type === "paragraph" || n.type === "heading") return n.content.every(_inline)
  if (n.type === "bulletList" || n.type === "orderedList")
    return n.content.length > 0 && n.content.every((c) => (c as { type?: string }).type === "listItem" && _block(c))
  if (n.type === "listItem") return n.content.length > 0 && n.content.every(_block)
  return false
}

function _inline(node: unknown): boolean {
  const n = node as { type?: string; text?: unknown; marks?: unknown }
  if (!INLINE.has(String(n?.type))) return false
  if (n.type !== "text") return true
  if (typeof n.text !== "string" || n.text === "") return false
  if (n.marks === undefined) return true
  return (
    Array.isArray(n.marks) &&
    n.marks.every((m: { type?: string; attrs?: { href?: unknown } }) => {
      if (!MARKS.has(String(m?.type))) return false
      return m.type !== "link" || typeof m.attrs?.href === "string"
    })
  )
}
