// What a provider's failure means to the chat: our own deadline or a cancel (the abort's reason,
// already an LlmError), the SDK's connection timeout (timeout), or anything else: refused, failing,
// redirecting (never followed: no-redirect.ts) or unreachable (unavailable: with the system's reason,
// ECONNREFUSED or ENOTFOUND, where the OpenAI SDK says only "Connection error."). The message names the
// provider and its URL, never the key: the error reaches whoever wrote the message, and a provider or
// proxy may quote the key it was sent, so the key (and any password in the URL) is cut out of what it
// said. A redirect's target is named by its origin alone.
import {
  APIError as AnthropicApiError,
  APIConnectionError as AnthropicConnectionError,
  APIConnectionTimeoutError as AnthropicTimeout,
} from "@anthropic-ai/sdk"
import {
  APIError as OpenAiApiError,
  APIConnectionError as OpenAiConnectionError,
  APIConnectionTimeoutError as OpenAiTimeout,
} from "openai"
import { LlmError } from "../../ai/llm-port.ts"
import { scrub } from "../notify/http.ts"
import type { ProviderSettings } from "./provider.ts"

export function providerFailure(name: string, s: ProviderSettings, signal: AbortSignal, error: unknown): LlmError {
  if (signal.aborted && signal.reason instanceof LlmError) return signal.reason
  if (error instanceof LlmError) return error
  const where = `${name} at ${s.baseUrl ? shownUrl(s.baseUrl) : "its default URL"}`
  if (error instanceof AnthropicTimeout || error instanceof OpenAiTimeout)
    return new LlmError("timeout", `${where} did not answer within ${s.timeoutMs / 1000} s`)
  if ((error instanceof AnthropicApiError || error instanceof OpenAiApiError) && typeof error.status === "number") {
    if (error.status >= 300 && error.status < 400) {
      const to = redirectOrigin(error.headers?.get("location"))
      return new LlmError(
        "unavailable",
        scrub(
          `${where} answered ${error.status}, a redirect${to ? ` to ${to}` : ""}, which is not followed: it would re-send the request, the conversation with it, to another address. If that address is the provider's own, set [ai] base_url to it`,
          secretsOf(s),
        ),
      )
    }
    const said = scrub(error.message, secretsOf(s))
      .replace(/^\d{3}\s*/, "")
      .slice(0, 300)
    const wait = retryAfterSeconds(error.headers?.get("retry-after"))
    const again = wait === null ? "" : `; it asks to be asked again in ${wait} s`
    return new LlmError("unavailable", `${where} answered ${error.status}: ${said}${again}`)
  }
  if (error instanceof AnthropicConnectionError || error instanceof OpenAiConnectionError) {
    const cause = _causeCode(error.cause)
    return new LlmError(
      "unavailable",
      `${where} could not be used: no connection${cause ? ` (${cause})` : ""}; check that the model server runs there and that this host can reach it ([ai] base_url)`,
    )
  }
  const reason = scrub(error instanceof Error ? error.message : String(error), secretsOf(s))
  return new LlmError("unavailable", `${where} could not be used: ${reason.slice(0, 300)}`)
}

/** A stream that ended before the provider said its answer was over; `missing` names what never came. */
export function streamCut(missing: string): Error {
  return new Error(`the answer's stream ended before the answer did (${missing}): the connection was cut`)
}

/** A Retry-After header's wait in whole seconds (a number of seconds, or an HTTP date); null if none or unreadable. */
export function retryAfterSeconds(value: string | null | undefined, nowMs = Date.now()): number | null {
  if (!value) return null
  const text = value.trim()
  if (/^\d{1,6}$/.test(text)) return Number(text)
  // An HTTP date (RFC 9110's IMF-fixdate): Date.parse alone takes "-5" for a year.
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return null
  const at = Date.parse(text)
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - nowMs) / 1000))
}

/** The system's code for a failed connection (ECONNREFUSED, ENOTFOUND…), or null. */
function _causeCode(cause: unknown): string | null {
  const code = (cause as { code?: unknown } | undefined)?.code
  return typeof code === "string" && /^[A-Z][A-Z0-9_]{1,40}$/.test(code) ? code : null
}

const secretsOf = (s: ProviderSettings): string[] => {
  const password = URL.canParse(s.baseUrl) ? decodeURIComponent(new URL(s.baseUrl).password) : ""
  return [s.apiKey, password].filter((v) => v !== "")
}

/** Where a redirect points, as an origin (its path and query may hold a token); null if relative or unreadable. */
function redirectOrigin(location: string | null | undefined): string | null {
  if (!location || !URL.canParse(location)) return null
  const origin = new URL(location).origin
  return origin === "null" ? null : origin.slice(0, 200)
}

/** The base URL without its user and password. */
function shownUrl(url: string): string {
  if (!URL.canParse(url)) return "its configured URL"
  const u = new URL(url)
  u.username = ""
  u.password = ""
  return u.toString().replace(/\/$/, "")
}
