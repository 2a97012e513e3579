// The dashboard's one way to the API: every call carries the in-memory session's bearer token, parses
// the API's JSON error shape, and turns a 401 into the end of the session (back to sign-in) rather
// than an error on screen. Nothing here ever puts the token in a URL.
import type { Session } from "./session.ts"
import { parseShown } from "./shown-json.ts"

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null,
  ) {
    super(message)
  }
}

/** An API answer that is not JSON or has no `error` field still gets a message a person can read. */
async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText || "error"}`
  let code: string | null = null
  try {
    const body = parseShown<{ error?: unknown; message?: unknown; code?: unknown }>(await res.text())
    if (typeof body.message === "string") message = body.message
    else if (typeof body.error === "string") message = body.error
    if (typeof body.code === "string") code = body.code
  } catch {
    // not JSON: the status line says enough
  }
  return new ApiError(res.status, message, code)
}

export function createApi(session: Session) {
  async function request<T>(path: string, init: RequestInit = {}, renewed = false): Promise<T> {
    const token = session.token()
    if (!token) throw new ApiError(401, "not signed in", "AUTHENTICATION_FAILED")
    let res: Response
    try {
      res = await fetch(path, {
        ...init,
        credentials: "omit",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
      })
    } catch {
      throw new ApiError(0, "the control plane cannot be reached", null)
    }
    if (res.status === 401) {
      const error = await errorOf(res)
      // Only the session that made the call ends: a newer sign-in meanwhile is left alone.
      const now = session.token()
      if (now === token) session.end(`Your session ended: ${error.message.replace(/\.$/, "")}.`)
      // The session was refreshed while this call was under way (a refresh revokes the old token at
      // once): it is made again, once, with the new token.
      else if (now !== null && !renewed) return request<T>(path, init, true)
      throw error
    }
    if (!res.ok) throw await errorOf(res)
    return parseShown<T>(await res.text())
  }

  return {
    get: <T>(path: string) => request<T>(path),
    put: <T>(path: string, body: unknown) => request<T>(path, { method: "PUT", body: JSON.stringify(body) }),
    post: <T>(path: string, body: unknown) => request<T>(path, { method: "POST", body: JSON.stringify(body) }),
  }
}

export type Api = ReturnType<typeof createApi>

/** Path segments are always encoded: a node id never changes the route it is put into. */
export const seg = (s: string) => encodeURIComponent(s)
