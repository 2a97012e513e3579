// MCP over Streamable HTTP at /mcp. Every request needs `Authorization: Bearer` with a credential the
// control plane accepts (the admin token, an API token, a session JWT): an MCP session is opened by an
// initialize request whose credential the control plane vouches for (GET /api/auth/me), and every
// later request of that session must carry the same credential. A browser page on another origin
// cannot drive it (DNS rebinding): a request whose Host is not a name of this server (the address it
// listens on; on loopback, the loopback names too) is refused, and so is one with an Origin other than
// its Host. A rebinding page sends Host and Origin alike with its own name, so the Origin alone proves
// nothing. A reverse proxy's name, or a DNS name of the address, is listed in [mcp] allowed_hosts.
// Bound to every address (0.0.0.0), the server cannot know its names: only the Origin is checked.
// Sessions are capped (a user keeps its 8 newest, whatever logins or tokens it opens them with) and
// forgotten after an idle hour. A session's credential is vouched for again on every request, so one
// revoked or expired ends its sessions at their next request: tools/list and resources/list answer
// from what the session learnt when it opened, without asking the API, so any time the control
// plane's word were kept for, they would answer a revoked token while every call is refused. MCP
// traffic goes at a person's or a model's pace; the check is one request to the API.
import { createHash, randomUUID } from "node:crypto"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"
import { createLogger } from "../../protocol/log.ts"
import { isLoopbackHost } from "../../protocol/loopback.ts"
import { apiCaller } from "./api-caller.ts"
import { guardMessages, refusalOf } from "./message-guard.ts"
import { createMcpServer, followEnrolments, type McpIdentity, servedTo } from "./server.ts"

const log = createLogger("mcp")

const MAX_SESSIONS = 200
/**
 * Sessions one user keeps (counted by the control plane's `subject`: each refreshed login is a new
 * credential, and 25 of them once held all 200); its oldest is closed for a new one. Below the API's
 * 16 event streams a user.
 */
const MAX_SESSIONS_PER_USER = 8
const IDLE_MS = 60 * 60_000
const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/

interface Session {
  transport: WebStandardStreamableHTTPServerTransport
  tokenHash: string
  subject: string
  lastUsed: number
  stop: AbortController
}

export interface McpHttpOptions {
  host: string
  port: number
  /** The control plane's API. */
  controlUrl: string
  /** More names the Host header may give, on any port: a reverse proxy's or a DNS name ([mcp] allowed_hosts). */
  allowedHosts?: string[]
  /** Sessions at once, all users together; default MAX_SESSIONS. */
  maxSessions?: number
}

const jsonError = (status: number, error: string, code: string, headers: Record<string, string> = {}) =>
  Response.json({ error, code }, { status, headers })

const hashOf = (token: string) => createHash("sha256").update(token).digest("hex")

/** Who the control plane says this credential is, or the HTTP answer that refuses it. */
async function identify(controlUrl: string, token: string): Promise<McpIdentity | Response> {
  const api = apiCaller(controlUrl, token)
  const answer = await api({ method: "GET", path: "/api/auth/me" })
  if (answer.status === 200) return answer.body as McpIdentity
  if (answer.status === 0)
    return jsonError(502, `the control plane at ${controlUrl} is unreachable`, "UPSTREAM_UNREACHABLE")
  const body = answer.body as { error?: string; code?: string } | null
  // Only a refusal of the credential is a 401 (a client starts over, or signs in again); the control
  // plane's rate limit or failure is said as such.
  if (answer.status === 429)
    return jsonError(
      429,
      body?.error ?? "the control plane's rate limit was reached",
      body?.code ?? "RATE_LIMIT_EXCEEDED",
    )
  if (answer.status >= 500)
    return jsonError(502, `the control plane at ${controlUrl} failed (${answer.status})`, "UPSTREAM_FAILED")
  return jsonError(
    answer.status === 403 ? 403 : 401,
    body?.error ?? "the control plane refused the credential",
    body?.code ?? "AUTHENTICATION_FAILED",
    { "www-authenticate": 'Bearer realm="chimera"' },
  )
}

/**
 * The transport's answer to `req`. The SDK answers a body of valid JSON that is not a JSON-RPC message
 * (`params: []`, `"jsonrpc": "1.0"`) 400 with -32700 "Parse error" and a null id; such a POST gets what
 * stdio gives it instead (refusalOf): its id, and -32602 naming the field or -32600. The body is read
 * a second time only for a 400, once the SDK has read it within its size limit.
 */
async function handled(transport: WebStandardStreamableHTTPServerTransport, req: Request): Promise<Response> {
  const copy = req.method === "POST" ? req.clone() : null
  const res = await transport.handleRequest(req)
  if (copy === null) return res
  if (res.status !== 400) {
    void copy.body?.cancel().catch(() => {})
    return res
  }
  const value: unknown = await copy.json().catch(() => undefined)
  if (value === undefined) return res
  const refused = (Array.isArray(value) ? value : [value]).map(refusalOf).find((r) => r !== null)
  if (!refused) return res
  const error = { code: refused.code, message: refused.message }
  return Response.json({ jsonrpc: "2.0", id: refused.id, error }, { status: 400 })
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]

/** A host as a Host header's name reads once parsed (`0:0::1` → `[::1]`, `LOCALHOST` → `localhost`). */
function hostName(host: string): string {
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
  return URL.canParse(`http://${bracketed}`) ? new URL(`http://${bracketed}`).hostname : bracketed.toLowerCase()
}

/** The names a request's Host may give, or null when any may (a wildcard address). */
function namesOf(host: string): Set<string> | null {
  const name = hostName(host)
  if (name === "0.0.0.0" || name === "[::]" || name === "") return null
  return new Set([name, ...(isLoopbackHost(name) ? LOOPBACK_NAMES : [])])
}

export function serveMcpHttp(opts: McpHttpOptions) {
  const sessions = new Map<string, Session>()
  const maxSessions = opts.maxSessions ?? MAX_SESSIONS
  const names = namesOf(opts.host)
  const elsewhere = new Set((opts.allowedHosts ?? []).map(hostName))
  /** Whether a request's Host is one of this server's names (DNS rebinding: see the top of the file). */
  const ownHost = (url: URL, port: number) =>
    names === null ||
    elsewhere.has(url.hostname) ||
    (names.has(url.hostname) && Number(url.port || (url.protocol === "https:" ? 443 : 80)) === port)

  const close = async (id: string) => {
    const s = sessions.get(id)
    if (!s) return
    sessions.delete(id)
    s.stop.abort()
    await s.transport.close().catch(() => {})
  }

  /** Closes `subject`'s oldest sessions until a new one keeps it within MAX_SESSIONS_PER_USER. */
  const makeRoomFor = (subject: string) => {
    const mine = [...sessions].filter(([, s]) => s.subject === subject).sort(([, a], [, b]) => a.lastUsed - b.lastUsed)
    // close() forgets a session at once, before its transport has closed.
    for (const [id] of mine.slice(0, Math.max(0, mine.length - MAX_SESSIONS_PER_USER + 1))) void close(id)
  }

  /**
   * Initializes let in whose sessions are not stored yet, by user. Each holds its place under the caps
   * from the moment it is let in: checked against stored sessions alone, initializes whose bodies
   * came slowly were each let in while the others were still being read, past the server's cap.
   */
  const opening = new Map<string, number>()
  /** Places held, by user: sessions stored and initializes let in. */
  const held = () => {
    const by = new Map(opening)
    for (const s of sessions.values()) by.set(s.subject, (by.get(s.subject) ?? 0) + 1)
    return by
  }
  /** Places taken, all users together: a user's beyond its own cap replace its oldest, and take none. */
  const taken = (by: Map<string, number>) => {
    let total = 0
    for (const n of by.values()) total += Math.min(n, MAX_SESSIONS_PER_USER)
    return total
  }
  /** Lets an initialize of `subject` in; the returned function gives its place back, once. */
  const admitOpening = (subject: string) => {
    opening.set(subject, (opening.get(subject) ?? 0) + 1)
    let held = true
    return () => {
      if (!held) return
      held = false
      const left = (opening.get(subject) ?? 1) - 1
      if (left > 0) opening.set(subject, left)
      else opening.delete(subject)
    }
  }

  const sweep = setInterval(() => {
    const now = Date.now()
    for (const [id, s] of sessions) if (now - s.lastUsed > IDLE_MS) void close(id)
  }, 60_000)

  const server = Bun.serve({
    hostname: opts.host,
    port: opts.port,
    idleTimeout: 0,
    async fetch(req, srv) {
      const url = new URL(req.url)
      if (url.pathname !== "/mcp")
        return jsonError(404, `no route for ${req.method} ${url.pathname}; MCP is served at /mcp`, "NOT_FOUND")
      if (!ownHost(url, srv.port ?? opts.port))
        return jsonError(
          403,
          `Host ${url.host} is not this server's; send requests to ${hostName(opts.host)}:${srv.port}, or list the name in [mcp] allowed_hosts`,
          "PERMISSION_DENIED",
        )
      const origin = req.headers.get("origin")
      if (origin !== null && origin !== `${url.protocol}//${url.host}`)
        return jsonError(403, `requests from origin ${origin} are refused`, "PERMISSION_DENIED")
      const m = BEARER.exec(req.headers.get("authorization") ?? "")
      if (!m?.[1])
        return jsonError(
          401,
          "missing or malformed Authorization header; send `Authorization: Bearer <token>`",
          "AUTHENTICATION_FAILED",
          { "www-authenticate": 'Bearer realm="chimera"' },
        )
      const token = m[1]
      const tokenHash = hashOf(token)
      const sessionId = req.headers.get("mcp-session-id")
      if (sessionId !== null) {
        const s = sessions.get(sessionId)
        if (!s) return jsonError(404, "no such MCP session (it ended or expired); initialize a new one", "NOT_FOUND")
        if (s.tokenHash !== tokenHash)
          return jsonError(403, "this MCP session belongs to another credential", "PERMISSION_DENIED")
        s.lastUsed = Date.now()
        const again = await identify(opts.controlUrl, token)
        if (again instanceof Response) {
          // Refused (revoked, expired): the session ends with it. Unreachable or busy: it waits.
          if (again.status === 401 || again.status === 403) await close(sessionId)
          return again
        }
        return handled(s.transport, req)
      }
      if (req.method !== "POST")
        return jsonError(400, "an MCP session starts with an initialize POST", "VALIDATION_FAILED")
      const who = await identify(opts.controlUrl, token)
      if (who instanceof Response) return who
      // A client need not end its session (DELETE is a SHOULD, and the SDK's close() sends none): a
      // credential's oldest session makes way for its new one, so neither one client's reconnects nor
      // one user's flood fills the server (nor the user's own event streams, one per session).
      // A control plane that names no subject (an older one): each credential counts as its own user.
      const subject = who.subject ?? `credential:${tokenHash}`
      const places = held()
      const replacesOwn = (places.get(subject) ?? 0) >= MAX_SESSIONS_PER_USER
      if (taken(places) >= maxSessions && !replacesOwn)
        return jsonError(429, `at most ${maxSessions} MCP sessions at once`, "RESOURCE_EXHAUSTED")
      const opened = admitOpening(subject)
      const api = apiCaller(opts.controlUrl, token)
      const mcp = createMcpServer(api, who)
      const stop = new AbortController()
      const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          // The user's oldest session makes way here, as the new one is stored, not when its request
          // came: initializes whose bodies arrive together (or slowly) each found room then.
          makeRoomFor(subject)
          opened()
          const at = Date.now()
          sessions.set(id, { transport, tokenHash, subject, lastUsed: at, stop })
          void followEnrolments(api, token, () => mcp.sendResourceListChanged(), stop.signal)
          log.info("session opened", { session: id, user: who.name, role: who.role })
        },
        onsessionclosed: (id) => void close(id),
      })
      try {
        await mcp.connect(transport)
        guardMessages(transport, servedTo(who))
        return await handled(transport, req)
      } finally {
        // Stored by now, or never will be (a body that was no initialize, a client gone).
        opened()
      }
    },
  })

  const url = `http://${server.hostname?.includes(":") ? `[${server.hostname}]` : server.hostname}:${server.port}/mcp`
  return {
    url,
    sessions: () => sessions.size,
    async stop() {
      clearInterval(sweep)
      await Promise.all([...sessions.keys()].map(close))
      await server.stop(true)
    },
  }
}
