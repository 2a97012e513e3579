// How large a request body may be: 1 MiB, except an agent's report batch. A body over its limit is a
// 413 before anyone reads it (Content-Length), or as soon as a chunked body passes it; a report batch
// must come with its length (a reverse proxy in front must pass it on, not stream bodies chunked).
// Built once: the checks run on every /api request.
import type { MiddlewareHandler } from "hono"
import { bodyLimit } from "hono/body-limit"
import { ChimeraError } from "../domain/errors.ts"
import { errorResponse } from "./errors.ts"

const MiB = 1024 * 1024
/** A report batch holds up to 500 reports of at most ~70 KiB (a failed heal's output is capped at 64 KiB). */
export const REPORTS_LIMIT = 48 * MiB
export const DEFAULT_LIMIT = 1 * MiB
const REPORTS_PATH = /^\/api\/agent\/[^/]+\/reports$/

/** The limit of the body sent to `path`. */
export const bodyLimitOf = (path: string) => (REPORTS_PATH.test(path) ? REPORTS_LIMIT : DEFAULT_LIMIT)

const limitBody = (maxSize: number) =>
  bodyLimit({
    maxSize,
    onError: (c) =>
      errorResponse(c, new ChimeraError("PAYLOAD_TOO_LARGE", `the request body is larger than ${maxSize / MiB} MiB`)),
  })

const reports = limitBody(REPORTS_LIMIT)
const other = limitBody(DEFAULT_LIMIT)

/**
 * A report batch comes with its Content-Length: its quota is charged from it before the body is read.
 * Chunked, it would be read (up to 48 MiB) before the quota could refuse it, so many at once from one
 * node over its quota held gigabytes; the agent always sends a length.
 */
export const bodyLimits: MiddlewareHandler = (c, next) => {
  if (!REPORTS_PATH.test(c.req.path)) return other(c, next)
  if (c.req.method === "POST" && c.req.header("content-length") === undefined)
    return Promise.resolve(
      errorResponse(
        c,
        new ChimeraError("LENGTH_REQUIRED", "a report batch needs a Content-Length header (it is not read chunked)"),
      ),
    )
  return reports(c, next)
}
