// One place maps errors to HTTP: domain codes to statuses, and anything unexpected to a logged 500
// whose body says nothing of the internals. Every answer is `{"error", "code", "detail"}`.
import type { Context } from "hono"
import { HTTPException } from "hono/http-exception"
import type { ContentfulStatusCode } from "hono/utils/http-status"
import { createLogger } from "../../protocol/log.ts"
import { ChimeraError, type ErrorCode } from "../domain/errors.ts"

const log = createLogger("api")

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  INVALID_JSON: 400,
  VALIDATION_FAILED: 422,
  AUTHENTICATION_FAILED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  METHOD_NOT_ALLOWED: 405,
  INTERNAL: 500,
}

export function errorResponse(c: Context, error: ChimeraError) {
  const status = STATUS[error.code]
  if (status === 401) c.header("WWW-Authenticate", 'Bearer realm="chimera"')
  return c.json(
    { error: error.message, code: error.code, ...(error.detail === undefined ? {} : { detail: error.detail }) },
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
  log.error("unhandled error", { method: c.req.method, path: c.req.path, error })
  return c.json({ error: "internal error; the control plane's log has the details", code: "INTERNAL" }, 500)
}
