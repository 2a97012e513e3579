// The control plane's metrics in a Prometheus registry of its own (never prom-client's global one, so
// two control planes in one process, as in tests, keep their own counts). What is cheap to count is
// counted where it happens (a counter increment on the heartbeat path); what the store already knows
// (nodes by status, finished deploys) is read when scraped. Everything recorded here is also handed to
// an optional sink, the OpenTelemetry meter (otel.ts), when a collector is configured.
import { Counter, Gauge, Histogram, Registry } from "prom-client"
import { VERSION } from "../../../protocol/version.ts"
import type { DeploymentRecord } from "../../domain/deployment-record.ts"
import type { FleetEvent } from "../../domain/events.ts"
import { deriveStatus, type NodeRecord, NodeStatus } from "../../domain/node.ts"
import { type Labels, METRICS, type MetricDef, type MetricKey } from "./catalogue.ts"
import { createRequestStats } from "./request-stats.ts"

/** Where recordings go besides the registry; gauges are read through `observe` when it collects. */
export interface MetricSink {
  add(key: MetricKey, value: number, labels?: Labels): void
  record(key: MetricKey, value: number, labels?: Labels): void
  observe(key: MetricKey, read: () => Promise<[Labels, number][]>): void
}

export interface MetricsSources {
  listNodes(): Promise<NodeRecord[]>
  /** Deploys and SSH heals finished after `at` (ISO), oldest first, at most `limit`. */
  deploymentsFinishedAfter?(at: string, limit: number): Promise<DeploymentRecord[]>
  /** When counting deploys starts: those finished before are history, not this process's to count. */
  since?: string
}

export type ControlMetrics = ReturnType<typeof createControlMetrics>

const once = (fn: () => void) => {
  let done = false
  return () => {
    if (done) return
    done = true
    fn()
  }
}

const REFUSALS: Record<number, string> = { 401: "unauthenticated", 403: "forbidden", 429: "rate_limited" }

export function createControlMetrics(sources: MetricsSources, sink: MetricSink | null = null) {
  const registry = new Registry()
  const def = (d: MetricDef) => ({ name: d.name, help: d.help, labelNames: [...d.labels], registers: [registry] })

  new Gauge(def(METRICS.buildInfo)).set({ version: VERSION, runtime: `bun ${Bun.version}` }, 1)

  const countNodes = async (): Promise<{ byStatus: Map<string, number>; reboot: number }> => {
    const byStatus = new Map<string, number>([...NodeStatus.options, "revoked"].map((s) => [s, 0]))
    let reboot = 0
    for (const node of await sources.listNodes()) {
      // A revoked node keeps the status its last heartbeat left; it is counted as what it is.
      const status = node.revoked ? "revoked" : deriveStatus(node)
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1)
      if (node.bootedPath !== null && node.currentPath !== null && node.bootedPath !== node.currentPath) reboot++
    }
    return { byStatus, reboot }
  }
  // Both gauges come from one read of the store per scrape.
  let counting: Promise<Awaited<ReturnType<typeof countNodes>>> | null = null
  const counted = () => {
    counting ??= countNodes().finally(() => {
      counting = null
    })
    return counting
  }
  new Gauge({
    ...def(METRICS.nodes),
    async collect() {
      const { byStatus } = await counted()
      for (const [status, n] of byStatus) this.set({ status }, n)
    },
  })
  new Gauge({
    ...def(METRICS.rebootRequired),
    async collect() {
      this.set((await counted()).reboot)
    },
  })

  // The heartbeat path only adds one to a number; the counter takes the sum when scraped.
  let heartbeatCount = 0
  new Counter({
    ...def(METRICS.heartbeats),
    collect() {
      this.reset()
      this.inc(heartbeatCount)
    },
  })
  const drift = new Counter(def(METRICS.drift))
  const heals = new Counter(def(METRICS.heals))
  const healDuration = new Histogram({ ...def(METRICS.healDuration), buckets: [...METRICS.healDuration.buckets] })
  const deployDuration = new Histogram({ ...def(METRICS.deployDuration), buckets: [...METRICS.deployDuration.buckets] })
  const requests = createRequestStats(registry, METRICS.requests, METRICS.requestDuration)
  const refused = new Counter(def(METRICS.refused))
  const longPolls = new Gauge(def(METRICS.longPolls))
  const eventStreams = new Gauge(def(METRICS.eventStreams))
  // Known label values start at zero, so a rate() has a series to work on before the first event.
  for (const outcome of ["succeeded", "failed"]) {
    heals.inc({ outcome }, 0)
    healDuration.zero({ outcome })
  }
  for (const reason of Object.values(REFUSALS)) refused.inc({ reason }, 0)
  let openPolls = 0
  let openStreams = 0

  // Finished deploys are read from the store (the CLI records them there) when scraped, from a cursor.
  let deployCursor = sources.since ?? new Date().toISOString()
  const readDeployments = async () => {
    if (!sources.deploymentsFinishedAfter) return
    for (;;) {
      const batch = await sources.deploymentsFinishedAfter(deployCursor, 500)
      for (const r of batch) {
        const seconds = Math.max(0, (Date.parse(r.finishedAt) - Date.parse(r.createdAt)) / 1000)
        deployDuration.observe({ kind: r.kind, status: r.status }, seconds)
        deployCursor = r.finishedAt
      }
      if (batch.length < 500) return
    }
  }

  if (sink) {
    const nodeGauge = async () =>
      [...(await counted()).byStatus].map(([status, n]): [Labels, number] => [{ status }, n])
    sink.observe("nodes", nodeGauge)
    sink.observe("rebootRequired", async () => [[{}, (await counted()).reboot]])
    sink.observe("longPolls", async () => [[{}, openPolls]])
    sink.observe("eventStreams", async () => [[{}, openStreams]])
    sink.observe("buildInfo", async () => [[{ version: VERSION, runtime: `bun ${Bun.version}` }, 1]])
  }

  return {
    registry,
    contentType: registry.contentType,

    async render(): Promise<string> {
      await readDeployments()
      return registry.metrics()
    },

    heartbeat() {
      heartbeatCount++
      sink?.add("heartbeats", 1)
    },

    /** Drift and heals, as agents report them (the event bus delivers each stored report once). */
    event(e: FleetEvent) {
      if (e.type === "drift.detected") {
        const kinds = Array.isArray(e.data.kinds) ? e.data.kinds.map(String) : ["unknown"]
        for (const kind of kinds) {
          drift.inc({ kind })
          sink?.add("drift", 1, { kind })
        }
      } else if (e.type === "heal.succeeded" || e.type === "heal.failed") {
        const outcome = e.type === "heal.succeeded" ? "succeeded" : "failed"
        heals.inc({ outcome })
        sink?.add("heals", 1, { outcome })
        if (typeof e.data.durationMs === "number") {
          healDuration.observe({ outcome }, e.data.durationMs / 1000)
          sink?.record("healDuration", e.data.durationMs / 1000, { outcome })
        }
      }
    },

    request(method: string, route: string, status: number, seconds: number) {
      requests.observe(method, route, status, seconds)
      const reason = REFUSALS[status]
      if (reason) refused.inc({ reason })
      if (sink) {
        sink.add("requests", 1, { method, route, status: String(status) })
        sink.record("requestDuration", seconds, { method, route })
        if (reason) sink.add("refused", 1, { reason })
      }
    },

    /** Marks an agent long poll open; call the result when it ends (more than once is harmless). */
    longPollOpened(): () => void {
      longPolls.inc()
      openPolls++
      return once(() => {
        longPolls.dec()
        openPolls--
      })
    },

    /** Marks an event-stream client connected; call the result when it leaves (more than once is harmless). */
    streamOpened(): () => void {
      eventStreams.inc()
      openStreams++
      return once(() => {
        eventStreams.dec()
        openStreams--
      })
    },
  }
}
