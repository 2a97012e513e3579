// OpenTelemetry, only when `[telemetry] endpoint` is set: traces and the metrics of catalogue.ts go to
// an OTLP/HTTP collector (JSON over HTTP, to `<endpoint>/v1/traces` and `<endpoint>/v1/metrics`).
// Unset, nothing of the SDK is even loaded: every module is imported here, lazily, on first use.
// `insecure` is the plain-text switch: an `http://` endpoint is refused without it, so traces (which
// name nodes and routes) never leave in clear text by accident; a bare `host:port` takes `http://`
// when insecure and `https://` otherwise.
import type { Tracer } from "@opentelemetry/api"
import { VERSION } from "../../../protocol/version.ts"
import { ConfigError } from "../../config.ts"
import { type Labels, METRICS, type MetricKey } from "./catalogue.ts"
import type { MetricSink } from "./prometheus.ts"

export interface TelemetrySettings {
  endpoint: string
  insecure: boolean
}

export interface Telemetry {
  tracer: Tracer
  sink: MetricSink
  /** Exports what is buffered and stops; a CLI awaits it before exiting. */
  shutdown(): Promise<void>
}

/** The collector's base URL, or null when telemetry is off; a refused setting throws ConfigError. */
export function collectorUrl({ endpoint, insecure }: TelemetrySettings): string | null {
  const raw = endpoint.trim()
  if (raw === "") return null
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `${insecure ? "http" : "https"}://${raw}`
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError(
      `config: telemetry.endpoint: expected an OTLP/HTTP URL such as https://otel:4318, got ${JSON.stringify(raw)}`,
    )
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:")
    throw new ConfigError(`config: telemetry.endpoint: expected http:// or https://, got ${parsed.protocol}//`)
  if (parsed.protocol === "http:" && !insecure)
    throw new ConfigError(
      "config: telemetry.endpoint: http:// sends traces in plain text; use https://, or set telemetry.insecure = true",
    )
  if (parsed.username || parsed.password)
    throw new ConfigError("config: telemetry.endpoint: credentials in the URL are not accepted")
  return parsed.href.replace(/\/+$/, "")
}

// A collector that does not answer delays a CLI's exit by at most this much, not the exporter's 10 s.
const EXPORT_TIMEOUT_MS = 5000

const otelName = (name: string) => name.replace(/_total$/, "")

export async function startTelemetry(settings: TelemetrySettings, service: string): Promise<Telemetry | null> {
  const base = collectorUrl(settings)
  if (base === null) return null
  const [trace, traceExporter, metrics, metricExporter, resources] = await Promise.all([
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/sdk-metrics"),
    import("@opentelemetry/exporter-metrics-otlp-http"),
    import("@opentelemetry/resources"),
  ])
  const resource = resources.resourceFromAttributes({ "service.name": service, "service.version": VERSION })
  const tracerProvider = new trace.BasicTracerProvider({
    resource,
    spanProcessors: [
      new trace.BatchSpanProcessor(
        new traceExporter.OTLPTraceExporter({ url: `${base}/v1/traces`, timeoutMillis: EXPORT_TIMEOUT_MS }),
      ),
    ],
  })
  const reader = new metrics.PeriodicExportingMetricReader({
    exporter: new metricExporter.OTLPMetricExporter({ url: `${base}/v1/metrics`, timeoutMillis: EXPORT_TIMEOUT_MS }),
    exportIntervalMillis: 15_000,
  })
  const meterProvider = new metrics.MeterProvider({ resource, readers: [reader] })
  const meter = meterProvider.getMeter("chimera", VERSION)

  type Adder = { add(value: number, labels?: Labels): void }
  type Recorder = { record(value: number, labels?: Labels): void }
  const adders = new Map<MetricKey, Adder>()
  const recorders = new Map<MetricKey, Recorder>()
  for (const [key, def] of Object.entries(METRICS) as [MetricKey, (typeof METRICS)[MetricKey]][]) {
    const options = { description: def.help, unit: "unit" in def ? def.unit : undefined }
    if (def.kind === "counter") adders.set(key, meter.createCounter(otelName(def.name), options))
    if (def.kind === "histogram")
      recorders.set(
        key,
        meter.createHistogram(def.name, {
          ...options,
          advice: { explicitBucketBoundaries: "buckets" in def ? [...def.buckets] : undefined },
        }),
      )
  }

  const sink: MetricSink = {
    add: (key, value, labels) => adders.get(key)?.add(value, labels),
    record: (key, value, labels) => recorders.get(key)?.record(value, labels),
    observe(key, read) {
      const def = METRICS[key]
      meter.createObservableGauge(def.name, { description: def.help }).addCallback(async (result) => {
        for (const [labels, value] of await read()) result.observe(value, labels)
      })
    },
  }

  return {
    tracer: tracerProvider.getTracer("chimera", VERSION),
    sink,
    async shutdown() {
      await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()])
    },
  }
}
