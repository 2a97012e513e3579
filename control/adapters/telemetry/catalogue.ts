// The control plane's metrics, declared once: their names, help, labels and buckets. The Prometheus
// registry (prometheus.ts) and the OpenTelemetry meter (otel.ts) are both built from this table, so
// `/metrics` and an OTLP collector see the same series. Names follow Prometheus conventions: a
// `chimera_` prefix, base units (`_seconds`), `_total` on counters; OpenTelemetry gets the name
// without `_total` (its exporters add it back) and the unit beside it.

export type MetricKind = "counter" | "gauge" | "histogram"

export interface MetricDef {
  kind: MetricKind
  name: string
  help: string
  labels: readonly string[]
  unit?: "s"
  buckets?: readonly number[]
}

// From a 2 ms heartbeat to a 30 s command long poll.
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
// A heal is tens of milliseconds when the closure is local, minutes when it must be fetched.
const HEAL_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
const DEPLOY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]

export const METRICS = {
  buildInfo: {
    kind: "gauge",
    name: "chimera_build_info",
    help: "Always 1; the labels say which Chimera and which runtime serve this endpoint.",
    labels: ["version", "runtime"],
  },
  nodes: {
    kind: "gauge",
    name: "chimera_nodes",
    help: "Enrolled nodes by status, as the control plane derives it when scraped (revoked: credential revoked).",
    labels: ["status"],
  },
  rebootRequired: {
    kind: "gauge",
    name: "chimera_nodes_reboot_required",
    help: "Enrolled nodes whose booted system differs from the running one.",
    labels: [],
  },
  heartbeats: {
    kind: "counter",
    name: "chimera_heartbeats_received_total",
    help: "Agent heartbeats accepted.",
    labels: [],
  },
  drift: {
    kind: "counter",
    name: "chimera_drift_detected_total",
    help: "Drift reported by agents, once per kind of drift in each report.",
    labels: ["kind"],
  },
  heals: {
    kind: "counter",
    name: "chimera_heals_total",
    help: "Heals reported by agents, by outcome.",
    labels: ["outcome"],
  },
  healDuration: {
    kind: "histogram",
    name: "chimera_heal_duration_seconds",
    help: "How long heals took on the node, by outcome.",
    labels: ["outcome"],
    unit: "s",
    buckets: HEAL_BUCKETS,
  },
  deployDuration: {
    kind: "histogram",
    name: "chimera_deploy_duration_seconds",
    help: "How long deploys and SSH heals took from build to the last target, by kind and status.",
    labels: ["kind", "status"],
    unit: "s",
    buckets: DEPLOY_BUCKETS,
  },
  requests: {
    kind: "counter",
    name: "chimera_http_requests_total",
    help: "API requests answered, by method, matched route pattern and status code.",
    labels: ["method", "route", "status"],
  },
  requestDuration: {
    kind: "histogram",
    name: "chimera_http_request_duration_seconds",
    help: "Time to answer API requests (long polls included), by method and matched route pattern.",
    labels: ["method", "route"],
    unit: "s",
    buckets: REQUEST_BUCKETS,
  },
  refused: {
    kind: "counter",
    name: "chimera_requests_refused_total",
    help: "Requests refused before any handler: unauthenticated (401), forbidden (403), rate limited (429).",
    labels: ["reason"],
  },
  longPolls: {
    kind: "gauge",
    name: "chimera_agent_long_polls_open",
    help: "Agent command long polls held open now.",
    labels: [],
  },
  eventStreams: {
    kind: "gauge",
    name: "chimera_event_stream_clients",
    help: "Clients following the event stream (Server-Sent Events) now.",
    labels: [],
  },
} as const satisfies Record<string, MetricDef>

export type MetricKey = keyof typeof METRICS
export type Labels = Record<string, string>
