// GET /metrics (the Prometheus text format) and the middleware that measures every request: its
// count and latency by method, matched route pattern (never the raw path, whose node ids and session
// ids would make a series per caller) and status, the heartbeats accepted, the agent long polls held
// open, and, when a collector is configured, one OpenTelemetry span per request. It wraps the agent
// fast path too, so the hot routes are counted like the others, with one cached counter increment.
import type { Span, Tracer } from "@opentelemetry/api"
import { Hono, type MiddlewareHandler } from "hono"
import type { ControlMetrics } from "../adapters/telemetry/prometheus.ts"
import type { ApiEnv } from "./auth.ts"
import { matchRoute } from "./guard.ts"

const HEARTBEAT = "POST /api/agent/:nodeId/heartbeat"
const LONG_POLL = /^\/api\/agent\/[^/]+\/commands$/
// Any other method string a client sends is one label value, not one each.
const METHODS = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])

// OpenTelemetry's numeric codes, written here so that no OpenTelemetry module is loaded without a collector.
const SPAN_KIND_SERVER = 1
const STATUS_ERROR = 2

export function requestMetrics(metrics: ControlMetrics, tracer: Tracer | null = null): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const t0 = performance.now()
    const method = METHODS.has(c.req.method) ? c.req.method : "OTHER"
    const polling = method === "GET" && LONG_POLL.test(c.req.path) ? metrics.longPollOpened() : null
    const span: Span | null = tracer ? tracer.startSpan(method, { kind: SPAN_KIND_SERVER }) : null
    try {
      await next()
    } finally {
      polling?.()
      const key = (c.get("route") ?? matchRoute(c))?.key ?? null
      const route = key === null ? "unmatched" : key.slice(key.indexOf(" ") + 1)
      const status = c.res.status
      metrics.request(method, route, status, (performance.now() - t0) / 1000)
      if (key === HEARTBEAT && status === 200) metrics.heartbeat()
      if (span) {
        span.updateName(`${method} ${route}`)
        span.setAttributes({
          "http.request.method": method,
          "http.route": route,
          "http.response.status_code": status,
        })
        if (status >= 500) span.setStatus({ code: STATUS_ERROR })
        span.end()
      }
    }
  }
}

export const metricsRoutes = (metrics: ControlMetrics) =>
  new Hono<ApiEnv>().get("/metrics", async (c) =>
    c.body(await metrics.render(), 200, { "content-type": metrics.contentType }),
  )
