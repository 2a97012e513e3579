// A local stand-in for ServiceNow's Table API on the incident table, checking what an instance checks:
// Basic auth (else 401 "User Not Authenticated"), Accept: application/json, a JSON body on writes,
// fields that exist on the incident table with values of the right kind, and the data policy that a
// resolved incident (state 6) has a close code and close notes (else 403, as a data policy exception
// answers). Records get a 32-hex sys_id and an INC number; work notes are kept as a journal; answers
// are {result: …}, filtered by sysparm_fields; errors {error: {message, detail}, status: "failure"}.
import { randomBytes } from "node:crypto"
import { basicCredentials, type FakeService, isJson, json, startFakeService } from "./fake-service.ts"

export interface SnIncident {
  sys_id: string
  number: string
  state: string
  short_description: string
  description: string
  urgency: string
  impact: string
  correlation_id: string
  correlation_display: string
  close_code: string
  close_notes: string
  work_notes: string[]
}

export interface ServiceNowFake extends FakeService {
  user: string
  password: string
  incidents: Map<string, SnIncident>
}

const WRITABLE = new Set([
  "short_description",
  "description",
  "urgency",
  "impact",
  "state",
  "correlation_id",
  "correlation_display",
  "close_code",
  "close_notes",
  "work_notes",
  "caller_id",
  "category",
  "assignment_group",
  "cmdb_ci",
])

const fail = (status: number, message: string, detail: string) =>
  json(status, { error: { message, detail }, status: "failure" })

export function startServiceNow(user = "chimera.integration", password = "Sn0w-p4ss-w0rd!"): ServiceNowFake {
  const incidents = new Map<string, SnIncident>()
  let next = 10001
  const shown = (i: SnIncident, fields: string | null) => {
    const all = { ...i, work_notes: i.work_notes.join("\n\n") } as Record<string, unknown>
    if (!fields) return all
    return Object.fromEntries(fields.split(",").map((f) => [f, all[f] ?? ""]))
  }
  const fake = startFakeService((req) => {
    const creds = basicCredentials(req.headers.authorization)
    if (!creds || creds.user !== user || creds.password !== password)
      return fail(401, "User Not Authenticated", "Required to provide Auth information")
    if (!/application\/json/.test(req.headers.accept ?? ""))
      return fail(406, "Not Acceptable", "this stand-in answers application/json only")
    const match = /^\/api\/now\/table\/incident(?:\/([^/]+))?$/.exec(req.path)
    if (!match) return fail(400, "Invalid table", "only the incident table is served here")
    const id = match[1] ? decodeURIComponent(match[1]) : null
    const fields = req.query.get("sysparm_fields")
    if (req.method === "GET" && id === null) {
      const query = req.query.get("sysparm_query") ?? ""
      const eq = /^correlation_id=(.*)$/.exec(query)
      const list = [...incidents.values()].filter((i) => (eq ? i.correlation_id === eq[1] : query === ""))
      const limit = Number(req.query.get("sysparm_limit") ?? "10000")
      return json(200, { result: list.slice(0, limit).map((i) => shown(i, fields)) })
    }
    const record = id === null ? null : incidents.get(id)
    if (req.method === "GET") {
      if (!record) return fail(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
      return json(200, { result: shown(record, fields) })
    }
    if (req.method !== "POST" && req.method !== "PATCH" && req.method !== "PUT")
      return fail(405, "Method not allowed", req.method)
    if (!isJson(req.headers) || typeof req.body !== "object" || req.body === null || Array.isArray(req.body))
      return fail(400, "Exception while reading request", "The payload is not valid JSON.")
    const body = req.body as Record<string, unknown>
    for (const [key, value] of Object.entries(body)) {
      if (!WRITABLE.has(key)) return fail(400, "Invalid field", `incident has no writable field ${key}`)
      if (typeof value !== "string") return fail(400, "Invalid value", `${key} must be a string`)
    }
    for (const key of ["urgency", "impact"] as const)
      if (body[key] !== undefined && !["1", "2", "3"].includes(String(body[key])))
        return fail(400, "Invalid value", `${key} must be 1, 2 or 3`)
    if (body.state !== undefined && !/^[1-8]$/.test(String(body.state)))
      return fail(400, "Invalid value", "state must be one of the incident states")
    if (req.method === "POST") {
      if (id !== null) return fail(405, "Method not allowed", "POST goes to the table")
      if (typeof body.short_description !== "string" || body.short_description === "")
        return fail(403, "Operation Failed", "Data Policy Exception: Short description is mandatory")
      const incident: SnIncident = {
        sys_id: randomBytes(16).toString("hex"),
        number: `INC00${next++}`,
        state: "1",
        description: "",
        urgency: "3",
        impact: "3",
        correlation_id: "",
        correlation_display: "",
        close_code: "",
        close_notes: "",
        short_description: "",
        work_notes: [],
      }
      _apply(incident, body)
      incidents.set(incident.sys_id, incident)
      return json(201, { result: shown(incident, fields) })
    }
    if (!record) return fail(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
    const after = { ...record, work_notes: [...record.work_notes] }
    _apply(after, body)
    if (after.state === "6" && (after.close_code === "" || after.close_notes === ""))
      return fail(403, "Operation Failed", "Data Policy Exception: Resolution code and Resolution notes are mandatory")
    incidents.set(record.sys_id, after)
    return json(200, { result: shown(after, fields) })
  })
  return { ...fake, user, password, incidents }
}

function _apply(incident: SnIncident, body: Record<string, unknown>) {
  for (const [key, value] of Object.entries(body)) {
    if (key === "work_notes") incident.work_notes.push(String(value))
    else if (key in incident) (incident as unknown as Record<string, string>)[key] = String(value)
  }
}
