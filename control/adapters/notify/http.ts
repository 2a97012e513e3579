// One HTTP exchange with a notification or ticket service, and what its outcome means for an outbox
// worker. Every request has a deadline (AbortSignal.timeout). A 429, a 408 or a 5xx, a timeout or a lost
// connection is worth retrying, after the service's Retry-After when it gave one (seconds or an HTTP
// date); any other 4xx is not, because the same request would be refused again: the credential, the URL
// or the payload is wrong, and a person must act. The error names the channel, what happened and the
// service's own reason, truncated and stripped of control characters; every secret the adapter holds
// is cut out of it, and only the host of a URL is ever named (a Slack webhook's path is its secret).
import type { DeliveryFailure } from "../../domain/notifications.ts"

export type Fetch = (input: string, init: RequestInit) => Promise<Response>

export interface HttpOptions {
  timeoutMs: number
  fetch?: Fetch
  /** Milliseconds since the epoch, for a Retry-After given as a date. */
  now?: () => number
}

export interface HttpAnswer {
  status: number
  headers: Headers
  text: string
  /** The body as JSON, or undefined when it is not JSON. */
  json: unknown
}

export interface HttpCall {
  /** The channel, as errors name it: "slack", "servicenow". */
  channel: string
  method: "GET" | "POST" | "PATCH"
  url: string
  headers?: Record<string, string>
  body?: unknown
  /** Values never to appear in an error: keys, passwords, the webhook URL. */
  secrets: string[]
}

/**
 * Sends the request; a transport failure (no answer at all) is answered as a retryable failure. The
 * deadline is the request's own timeout, or `deadline` when one operation makes several requests
 * (a Jira resolve: look up, comment, list transitions, transition) and must end within one timeout.
 */
export async function exchange(
  call: HttpCall,
  options: HttpOptions,
  deadline?: AbortSignal,
): Promise<HttpAnswer | DeliveryFailure> {
  const doFetch = options.fetch ?? fetch
  const headers: Record<string, string> = { accept: "application/json", ...call.headers }
  if (call.body !== undefined) headers["content-type"] = "application/json"
  try {
    const res = await doFetch(call.url, {
      method: call.method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: deadline ?? AbortSignal.timeout(options.timeoutMs),
      // A redirect would resend the credential to wherever it points; a service API does not redirect.
      redirect: "manual",
    })
    const text = await _readCapped(res, MAX_ANSWER_BYTES)
    let json: unknown
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: res.status, headers: res.headers, text, json }
  } catch (err) {
    return {
      ok: false,
      retryable: true,
      error: scrub(`${call.channel}: ${_transportError(err, call.url, options.timeoutMs)}`, call.secrets),
    }
  }
}

/** More than any of these services answers; a proxy that streams without end is cut off here. */
const MAX_ANSWER_BYTES = 256 * 1024
/** The longest Retry-After honoured: a day (a larger or far-future one is read as a day). */
const MAX_RETRY_AFTER_MS = 24 * 3600 * 1000

export const isFailure = (answer: HttpAnswer | DeliveryFailure): answer is DeliveryFailure => "ok" in answer

/**
 * The failure a non-2xx answer means. `reason` is the service's own explanation, read from its body by
 * the adapter; `hint` says what to check, when the adapter knows better than the status alone.
 */
export function failure(
  call: HttpCall,
  answer: HttpAnswer,
  reason: string,
  options: HttpOptions,
  hint = "",
): DeliveryFailure {
  const { status } = answer
  const retryable = status === 429 || status === 408 || status >= 500 || status < 200
  const retryAfterMs = retryable ? parseRetryAfter(answer.headers.get("retry-after"), options.now ?? Date.now) : null
  // Scrubbed whole, before it is clipped: a secret the cut went through would be only partly there.
  const why = reason.trim() === "" ? "" : ` ${_clip(scrub(reason, call.secrets))}`
  const advice =
    hint !== ""
      ? `: ${hint}`
      : status === 401 || status === 403
        ? ": check the credential"
        : status >= 300 && status < 400
          ? ": the endpoint redirects (not followed, it would carry the credential); configure the final address"
          : ""
  const error = scrub(`${call.channel}: ${_host(call.url)} answered ${status}${why}${advice}`, call.secrets)
  return retryAfterMs === null ? { ok: false, retryable, error } : { ok: false, retryable, retryAfterMs, error }
}

/** Retry-After as milliseconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); null if absent or bad. */
export function parseRetryAfter(value: string | null, now: () => number): number | null {
  if (value === null) return null
  const text = value.trim()
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS)
  const at = Date.parse(text)
  if (Number.isNaN(at) || !/[a-z]/i.test(text)) return null
  return Math.min(Math.max(0, at - now()), MAX_RETRY_AFTER_MS)
}

/** Cuts every secret (and any of its URL-encoded forms) out of a text. */
export function scrub(text: string, secrets: string[]): string {
  let out = text
  for (const secret of secrets) {
    if (secret.length < 4) continue
    for (const form of new Set([secret, encodeURIComponent(secret), encodeURI(secret)]))
      out = out.split(form).join("[redacted]")
  }
  return out
}

export const basicAuth = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

async function _readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return ""
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    chunks.push(value)
    size += value.byteLength
    if (size >= max) {
      await reader.cancel()
      break
    }
  }
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, max))
}

function _host(url: string): string {
  return URL.canParse(url) ? new URL(url).host : "the service"
}

function _clip(text: string): string {
  // A proxy's error page is HTML: its text is the reason, its tags are noise.
  const flat = text
    .replace(/<[^>]*>/g, " ")
    // biome-ignore lint/suspicious/noControlCharactersInRegex: a service's text must not drive the terminal
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ")
    .replace(/ {2,}/g, " ")
    .trim()
  return flat.length > 300 ? `${flat.slice(0, 297)}...` : flat
}

function _transportError(err: unknown, url: string, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string }
  const host = _host(url)
  if (e.name === "TimeoutError" || e.name === "AbortError")
    return `no answer from ${host} within ${Number((timeoutMs / 1000).toFixed(1))} s`
  const code = String(e.code ?? "")
  if (/ConnectionRefused|ECONNREFUSED/i.test(code)) return `cannot reach ${host}: connection refused`
  if (/ENOTFOUND|EAI_AGAIN|DNS/i.test(code)) return `cannot reach ${host}: host not found`
  if (/CERT|TLS|SSL/i.test(code)) return `cannot reach ${host}: TLS failed (${code})`
  if (/ECONNRESET|ConnectionClosed|Socket/i.test(code)) return `connection to ${host} lost before an answer`
  return `cannot reach ${host}: ${code || "request failed"}`
}
