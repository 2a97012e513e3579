// API request counts and latencies, kept where every request pays for them: prom-client hashes a
// series' labels on each increment and observation (microseconds per request, which at 10,000
// heartbeats a second is a share of a core), so these two series are plain numbers in nested maps
// (route, then method, then status) and a bucket index found by a short scan. The registry reads them
// only when scraped, through the `get()` that prom-client's registry asks every metric for.
import type { Counter, MetricValue, Registry } from "prom-client"
import type { MetricDef } from "./catalogue.ts"

interface Timing {
  buckets: Float64Array
  sum: number
  count: number
}

/** The entry under `key`, made by `make` the first time. */
function child<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key)
  if (value === undefined) {
    value = make()
    map.set(key, value)
  }
  return value
}

type Value = MetricValue<string> & { metricName?: string }

/** What prom-client's registry reads of a metric: it renders `get()`'s values under `name`. */
interface Exposed {
  name: string
  help: string
  type: "counter" | "histogram"
  aggregator: "sum"
  get(): Promise<{ name: string; help: string; type: string; aggregator: "sum"; values: Value[] }>
}

export function createRequestStats(registry: Registry, counter: MetricDef, histogram: MetricDef) {
  const bounds = [...(histogram.buckets ?? [])]
  const counts = new Map<string, Map<string, Map<number, number>>>()
  const timings = new Map<string, Map<string, Timing>>()

  const expose = (def: MetricDef, type: Exposed["type"], values: () => Value[]) => {
    const metric: Exposed = {
      name: def.name,
      help: def.help,
      type,
      aggregator: "sum",
      get: async () => ({ name: def.name, help: def.help, type, aggregator: "sum", values: values() }),
    }
    // The registry's Metric type is the union of prom-client's own classes; it reads only the fields above.
    registry.registerMetric(metric as unknown as Counter)
  }

  expose(counter, "counter", () => {
    const out: Value[] = []
    for (const [route, byMethod] of counts)
      for (const [method, byStatus] of byMethod)
        for (const [status, n] of byStatus) out.push({ labels: { method, route, status }, value: n })
    return out
  })
  expose(histogram, "histogram", () => {
    const out: Value[] = []
    for (const [route, byMethod] of timings)
      for (const [method, t] of byMethod) {
        let cumulative = 0
        bounds.forEach((le, i) => {
          cumulative += t.buckets[i] ?? 0
          out.push({ metricName: `${histogram.name}_bucket`, labels: { le, method, route }, value: cumulative })
        })
        out.push(
          { metricName: `${histogram.name}_bucket`, labels: { le: "+Inf", method, route }, value: t.count },
          { metricName: `${histogram.name}_sum`, labels: { method, route }, value: t.sum },
          { metricName: `${histogram.name}_count`, labels: { method, route }, value: t.count },
        )
      }
    return out
  })

  return {
    observe(method: string, route: string, status: number, seconds: number) {
      const byStatus = child(
        child(counts, route, () => new Map()),
        method,
        () => new Map<number, number>(),
      )
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1)
      const t = child(
        child(timings, route, () => new Map()),
        method,
        () => ({
          buckets: new Float64Array(bounds.length),
          sum: 0,
          count: 0,
        }),
      )
      let i = 0
      while (i < bounds.length && seconds > (bounds[i] as number)) i++
      if (i < bounds.length) t.buckets[i] = (t.buckets[i] ?? 0) + 1
      t.sum += seconds
      t.count++
    },
  }
}
