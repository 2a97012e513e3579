// The frame the local stand-ins for Slack, PagerDuty, ServiceNow and Jira share: an HTTP server on
// 127.0.0.1 (port 0) that records every request it received with what it answered, and can be told to
// answer the next N requests with an outage (a 500, or a 429 with Retry-After) before it looks at them,
// as the real service does when it is down or throttling. Each service's own checks (auth, payload
// shape, status codes, ids) live in its file; a request that fails them gets the error that service
// would give, so an adapter is tested against the wire format, not against our idea of it.
export interface Received {
  method: string
  path: string
  query: URLSearchParams
  headers: Record<string, string>
  /** The body parsed as JSON, or the raw text when it is not JSON. */
  body: unknown
  /** What the fake answered. */
  status: number
}

export interface Outage {
  status: number
  headers?: Record<string, string>
  body?: string
}

export interface FakeService extends AsyncDisposable {
  /** http://127.0.0.1:PORT, with no trailing slash. */
  url: string
  received: Received[]
  /** Answers the next `count` requests with `outage`, whatever they hold. */
  failNext(count: number, outage: Outage): void
  stop(): Promise<void>
}

export type Handler = (req: Omit<Received, "status">) => Response | Promise<Response>

export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json;charset=UTF-8", ...headers },
  })

export function startFakeService(handle: Handler): FakeService {
  const received: Received[] = []
  const outages: Outage[] = []
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const url = new URL(request.url)
      const raw = await request.text()
      let body: unknown = raw
      try {
        body = raw === "" ? undefined : JSON.parse(raw)
      } catch {
        body = raw
      }
      const req = {
        method: request.method,
        path: url.pathname,
        query: url.searchParams,
        headers: Object.fromEntries(request.headers),
        body,
      }
      const outage = outages.shift()
      const res = outage
        ? new Response(outage.body ?? "", { status: outage.status, headers: outage.headers })
        : await handle(req)
      received.push({ ...req, status: res.status })
      return res
    },
  })
  const stop = async () => {
    await server.stop(true)
  }
  return {
    url: `http://127.0.0.1:${server.port}`,
    received,
    failNext(count, outage) {
      for (let i = 0; i < count; i++) outages.push(outage)
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

/** The user and password of a Basic authorization header, or null. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | null {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? "")
  if (!match?.[1]) return null
  const text = Buffer.from(match[1], "base64").toString("utf8")
  const colon = text.indexOf(":")
  return colon < 0 ? null : { user: text.slice(0, colon), password: text.slice(colon + 1) }
}

export const isJson = (headers: Record<string, string>) => /^application\/json\b/i.test(headers["content-type"] ?? "")
