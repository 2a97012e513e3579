// HTTP requests from a chosen loopback source address, for tests of limits kept per address: the
// control plane listens on 127.0.0.1 and sees each client as the address its socket is bound to
// (127.0.0.11, 127.0.0.12, … claimed through loopback.ts). fetch cannot bind a source address;
// node:http's `localAddress` can. One connection per request, so no answer is read on another's socket.
import http from "node:http"

export interface SourcedAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json<T = Record<string, unknown>>(): T
}

export interface SourcedRequest {
  method?: string
  token?: string | null
  /** Sent as JSON (with its Content-Type) unless `raw` is given. */
  body?: unknown
  raw?: string
  headers?: Record<string, string>
}

export function requestFrom(
  source: string,
  url: string,
  path: string,
  { method = "POST", token = null, body, raw, headers = {} }: SourcedRequest = {},
): Promise<SourcedAnswer> {
  const target = new URL(path, url)
  const payload = raw ?? (body === undefined ? undefined : JSON.stringify(body))
  const sent: Record<string, string> = {
    ...(raw === undefined && payload !== undefined ? { "content-type": "application/json" } : {}),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(payload === undefined ? {} : { "content-length": String(Buffer.byteLength(payload)) }),
    ...headers,
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method,
        localAddress: source,
        headers: sent,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on("data", (d: Buffer) => chunks.push(d))
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) })
        })
        res.on("error", reject)
      },
    )
    req.on("error", reject)
    req.end(payload)
  })
}
