// The request context of the agent fast path (agent-fast-path.ts): the part of Hono's Context its
// shared functions use (identify, admit and admitAs, checkJsonDepth, redactedJson, the request
// metrics, onError and errorResponse), without what Hono makes per request beyond that. Hono defines
// its Context's methods as arrow-function fields, so every request made a dozen closures: with the
// fast path's wrappers, 2.3 KB of the 6.4 KB a heartbeat allocated (BENCHMARKS.md).
//
// What it has behaves as Hono's does, down to how headers set before an answer reach it and how an
// answer read early (`c.res`) is merged into the one set after; agent-fast-path.test.ts compares every
// answer of the fast path (status, body, headers, audit rows) with the full chain's, which runs Hono's.
import type { Context } from "hono"
import { HonoRequest } from "hono/request"
import type { ApiEnv } from "./auth.ts"

type Headed = Record<string, string>

export class FastContext {
  readonly env: unknown
  readonly req: HonoRequest
  finalized = false
  #vars: Map<string, unknown> | undefined
  #prepared: Headers | undefined
  #res: Response | undefined

  constructor(raw: Request, env: unknown, path: string) {
    this.env = env
    this.req = new HonoRequest(raw, path)
  }

  /** As Hono's Context: this fast context where a function of the chain takes one. */
  asContext(): Context<ApiEnv> {
    return this as unknown as Context<ApiEnv>
  }

  get(key: string): unknown {
    return this.#vars?.get(key)
  }

  set(key: string, value: unknown): void {
    this.#vars ??= new Map()
    this.#vars.set(key, value)
  }

  header(name: string, value: string | undefined): void {
    if (this.finalized && this.#res && !this.#res.bodyUsed) this.#res = new Response(this.#res.body, this.#res)
    const headers = this.#res ? this.#res.headers : this.#preparedHeaders()
    if (value === undefined) headers.delete(name)
    else headers.set(name, value)
  }

  /** The headers set before an answer is made, which it then carries. */
  #preparedHeaders(): Headers {
    this.#prepared ??= new Headers()
    return this.#prepared
  }

  /** The answer so far; read before one is set, an empty one carrying the headers set until then. */
  get res(): Response {
    this.#res ??= new Response(null, { headers: this.#preparedHeaders() })
    return this.#res
  }

  /** Sets the answer; one read before (`res`) gives it its headers, Content-Type aside. */
  set res(res: Response) {
    if (this.#res) {
      const merged = new Response(res.body, res)
      for (const [name, value] of this.#res.headers.entries()) {
        if (name === "content-type") continue
        if (name === "set-cookie") {
          merged.headers.delete(name)
          for (const cookie of this.#res.headers.getSetCookie()) merged.headers.append(name, cookie)
        } else merged.headers.set(name, value)
      }
      res = merged
    }
    this.#res = res
    this.finalized = true
  }

  body(data: string | null, status?: number, headers?: Headed): Response {
    let answer = this.#res ? new Headers(this.#res.headers) : this.#prepared
    if (headers) {
      if (!answer && Object.keys(headers).length > 1) answer = new Headers()
      if (answer) for (const [name, value] of Object.entries(headers)) answer.set(name, value)
    }
    return new Response(data, { status, headers: answer ?? headers })
  }

  json(value: unknown, status?: number, headers?: Headed): Response {
    return this.body(JSON.stringify(value), status, { "Content-Type": "application/json", ...headers })
  }
}
