// One place maps errors to HTTP: domain codes to statuses, and anything unexpected to a logged 500
// whose body says nothing of the internals. Every answer is `{"error", "code", "detail"}`, passed
// through the logger's `redact` so no message can echo a secret; a 429 instead says when to retry.
// The database away answers every request 503 STORE_UNAVAILABLE, thousands a second with a large
// fleet: that is logged once, again each minute with how many, and once when it answers again.
import type { Context, MiddlewareHandler } from "hono"
import { HTTPException } from "hono/http-exception"
import type { ContentfulStatusCode } from "hono/utils/http-status"
import { CHAT_ERROR_STATUS, type ChatErrorCode } from "../../protocol/ai.ts"
import { failureLog } from "../../protocol/failure-log.ts"
import { createLogger, redact } from "../../protocol/log.ts"
import { ChimeraError, type ErrorCode } from "../domain/errors.ts"
import { storeAway, storeReason } from "../domain/store-away.ts"

const log = createLogger("api")
/** Requests answered 503 because the database is away (one process, however many apps it serves). */
const storeDown = failureLog(log, "the database cannot be reached; requests answer 503 STORE_UNAVAILABLE")

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  // The chat's codes answer as its protocol says, and so do the ones it shares with the rest (a bad
  // body, a limit).
  ...(CHAT_ERROR_STATUS as Record<ChatErrorCode, ContentfulStatusCode>),
  AUTHENTICATION_FAILED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LENGTH_REQUIRED: 411,
  METHOD_NOT_ALLOWED: 405,
  UPGRADE_REQUIRED: 426,
  PROVIDER_UNAVAILABLE: 503,
  // An action whose audit row cannot be stored is not performed: the store, not the caller, is at fault.
  AUDIT_UNAVAILABLE: 503,
  // The database is down or restarting: nothing the caller did, and a replica-aware agent moves on.
  STORE_UNAVAILABLE: 503,
  INTERNAL: 500,
}

// The AI chat API names a missing or refused credential and a refused permission in its own words, as
// its clients expect; everywhere else they keep the names the rest of the API uses.
const CHAT_API = "/api/v1/ai/"
const CHAT_CODES: Partial<Record<ErrorCode, ErrorCode>> = {
  AUTHENTICATION_FAILED: "AUTH_FAILED",
  PERMISSION_DENIED: "ACCESS_DENIED",
}

export function errorResponse(c: Context, raw: ChimeraError) {
  const renamed = c.req.path.startsWith(CHAT_API) ? CHAT_CODES[raw.code] : undefined
  const error = renamed ? new ChimeraError(renamed, raw.message, raw.detail) : raw
  const status = STATUS[error.code]
  if (status === 401) c.header("WWW-Authenticate", 'Bearer realm="chimera"')
  const message = redact(error.message) as string
  if (error.code === "RATE_LIMIT_EXCEEDED") {
    // {error, message, retryAfter, limit, window, resetAt}: which limit, and when to retry; `code` as on
    // every other error.
    const limits = (error.detail ?? {}) as Record<string, unknown>
    // The guard sets the X-RateLimit-* headers; a limit counted elsewhere (a login backoff) still says when.
    if (typeof limits.retryAfter === "number" && !c.res.headers.has("Retry-After"))
      c.header("Retry-After", String(limits.retryAfter))
    return c.json({ error: "RATE_LIMIT_EXCEEDED", code: error.code, message, ...limits }, status)
  }
  return c.json(
    { error: message, code: error.code, ...(error.detail === undefined ? {} : { detail: redact(error.detail) }) },
    status,
  )
}

export function onError(error: Error, c: Context) {
  if (error instanceof ChimeraError) return errorResponse(c, error)
  if (error instanceof HTTPException) {
    const code: ErrorCode =
      error.status === 413 ? "PAYLOAD_TOO_LARGE" : error.status === 401 ? "AUTHENTICATION_FAILED" : "INVALID_JSON"
    return errorResponse(c, new ChimeraError(code, error.message || "bad request"))
  }
  // A client that went away while it sent its body: its request is answered to no one, and it is no
  // fault of the control plane's (no 5xx, no error line).
  if (error.name === "AbortError" && c.req.raw.signal.aborted) {
    log.debug("the client went away before its request's body was read", { method: c.req.method, path: c.req.path })
    return errorResponse(c, new ChimeraError("INVALID_JSON", "the request's body ended before it was whole"))
  }
  if (storeAway(error)) {
    storeDown.failed(error, { method: c.req.method, path: c.req.path })
    return errorResponse(
      c,
      new ChimeraError(
        "STORE_UNAVAILABLE",
        `the control plane cannot reach its database (${storeReason(error)}); check that PostgreSQL runs and that ` +
          "this replica can reach it (CHIMERA_DB), then try again",
      ),
    )
  }
  log.error("unhandled error", { method: c.req.method, path: c.req.path, error })
  return c.json({ error: "internal error; the control plane's log has the details", code: "INTERNAL" }, 500)
}

/**
 * `measure` (the middleware around every request, the agent fast path's too), then: a request that
 * was admitted (its credential read from the store) and answered below 500 tells that the database
 * answers again. Public routes (health, liveness, the dashboard's files) read no credential.
 */
export function noticingStoreBack(measure: MiddlewareHandler): MiddlewareHandler {
  // While the store answers, the request goes as measured: no promise more on every heartbeat.
  return (c, next) => {
    const measured = measure(c, next)
    if (!storeDown.failing) return measured
    return measured.then(() => {
      if (c.res.status < 500 && c.get("principal") !== undefined) storeDown.worked()
    })
  }
}
