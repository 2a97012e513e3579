// How the MCP server reaches the control plane: as a client of its HTTP API with the caller's own
// credential, so every tool call is authenticated, authorised and audited there as that user, marked
// as coming through MCP (`X-Chimera-Via: mcp`). Answers are values, never exceptions: a refusal is a
// tool error the model can read.
import type { ApiRequest } from "../ops/catalogue.ts"

export interface ApiAnswer {
  status: number
  body: unknown
}

export interface ApiCaller {
  /** `signal`: the MCP call was cancelled; the request is abandoned. */
  (request: ApiRequest, signal?: AbortSignal): Promise<ApiAnswer>
  readonly url: string
}

export function apiCaller(url: string, token: string, fetchImpl: typeof fetch = fetch): ApiCaller {
  const base = url.replace(/\/+$/, "")
  const call = async (r: ApiRequest, signal?: AbortSignal): Promise<ApiAnswer> => {
    const qs = r.query && Object.keys(r.query).length > 0 ? `?${new URLSearchParams(r.query)}` : ""
    let res: Response
    try {
      res = await fetchImpl(`${base}${r.path}${qs}`, {
        method: r.method,
        headers: {
          authorization: `Bearer ${token}`,
          "x-chimera-via": "mcp",
          ...(r.body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: r.body === undefined ? undefined : JSON.stringify(r.body),
        redirect: "manual",
        signal,
      })
    } catch (error) {
      if (signal?.aborted) return { status: 0, body: { error: "the call was cancelled" } }
      return { status: 0, body: { error: `the control plane at ${base} is unreachable: ${(error as Error).message}` } }
    }
    const text = await res.text()
    let body: unknown = text
    try {
      body = text === "" ? null : JSON.parse(text)
    } catch {}
    return { status: res.status, body }
  }
  return Object.assign(call, { url: base })
}

/** The API's error message from an answer, for a tool error. */
export function errorText(answer: ApiAnswer): string {
  const b = answer.body as { error?: unknown; code?: unknown } | null
  if (b && typeof b.error === "string")
    return `${b.error}${typeof b.code === "string" ? ` (${answer.status} ${b.code})` : ""}`
  return `the control plane answered ${answer.status}`
}
