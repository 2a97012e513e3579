// How the chat reaches the fleet: through the control plane's own API, in-process, as the user the
// turn acts for (who asked, or who approved), so each tool call meets the same route rules, rate
// limits, handlers and audit row as any other caller. The row says it came through the chat, from
// which chat and model (`X-Chimera-Via: chat`); its actor is that user. Answers are values. A call is
// given its turn's signal: a turn cancelled while a relayed command runs cancels that run (the
// route reads the request's signal as it reads a closed connection).

import { INTERNAL_PRINCIPAL } from "../api/auth.ts"
import type { UserPrincipal } from "../domain/ports.ts"
import type { ApiRequest } from "../ops/catalogue.ts"

export interface ApiAnswer {
  status: number
  body: unknown
}

export interface ChatCallContext {
  chatId: number
  model: string
}

export type InternalApi = (
  as: UserPrincipal,
  request: ApiRequest,
  from: ChatCallContext,
  signal?: AbortSignal,
) => Promise<ApiAnswer>

type AppFetch = (request: Request, env: Record<symbol, unknown>) => Response | Promise<Response>

export function internalApi(appFetch: () => AppFetch): InternalApi {
  return async (as, r, from, signal) => {
    const qs = r.query && Object.keys(r.query).length > 0 ? `?${new URLSearchParams(r.query)}` : ""
    const body = r.body === undefined ? undefined : JSON.stringify(r.body)
    const request = new Request(`http://chimera.internal${r.path}${qs}`, {
      method: r.method,
      headers: {
        "x-chimera-via": "chat",
        "x-chimera-chat": String(from.chatId),
        "x-chimera-model": from.model,
        // The audit row reads a body's summary only when its length is announced, as over a socket.
        ...(body === undefined
          ? {}
          : { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }),
      },
      body,
      signal,
    })
    const res = await appFetch()(request, { [INTERNAL_PRINCIPAL]: as })
    const text = await res.text()
    let answer: unknown = text
    try {
      answer = text === "" ? null : JSON.parse(text)
    } catch {}
    return { status: res.status, body: answer }
  }
}
