// Spans made after the fact from what Chimera already records: a deploy's record (one trace: the
// deploy, its build, each target, and each target's phases with their real start times and lengths)
// and a heal an agent reported (one span, ending when the report says the heal ended). Both carry
// their timings as data, so nothing in the deploy or the agent has to know about tracing.
import { ROOT_CONTEXT, type Span, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api"
import { redactText } from "../../../protocol/log.ts"
import type { DeploymentRecord } from "../../domain/deployment-record.ts"
import type { FleetEvent } from "../../domain/events.ts"

const ms = (iso: string) => Date.parse(iso)
/**
 * An error for a span's status: a heal's or a target's error is a node's or a command's own words and
 * may quote a secret, and the collector (and whoever reads its traces) is outside Chimera, so it passes
 * the secret net every API answer does; cut after, so the cut cannot leave a secret unrecognised.
 */
const statusText = (error: unknown) => redactText(String(error ?? "")).slice(0, 500)

export function recordDeployTrace(tracer: Tracer, record: DeploymentRecord): void {
  const root = tracer.startSpan(`${record.kind} ${record.hash.slice(0, 12)}`, {
    startTime: ms(record.createdAt),
    attributes: {
      "chimera.deploy.id": record.id,
      "chimera.deploy.kind": record.kind,
      "chimera.deploy.status": record.status,
      "chimera.closure": record.closure,
      "chimera.targets": record.targets.length,
    },
  })
  const under = (parent: Span) => trace.setSpan(ROOT_CONTEXT, parent)
  const firstTarget = Math.min(...record.targets.map((t) => ms(t.startedAt)), ms(record.finishedAt))
  tracer
    .startSpan(
      "build",
      { startTime: ms(record.createdAt), attributes: { "chimera.config": record.configPath } },
      under(root),
    )
    .end(firstTarget)
  for (const t of record.targets) {
    const span = tracer.startSpan(
      `target ${t.target}`,
      {
        startTime: ms(t.startedAt),
        attributes: { "chimera.target": t.target, "chimera.target.status": t.status },
      },
      under(root),
    )
    for (const p of t.timings)
      tracer
        .startSpan(p.phase, { startTime: ms(p.startedAt), attributes: { "chimera.target": t.target } }, under(span))
        .end(ms(p.startedAt) + p.ms)
    if (t.error) span.setStatus({ code: SpanStatusCode.ERROR, message: statusText(t.error) })
    span.end(ms(t.startedAt) + t.ms)
  }
  if (record.status === "failed" || record.status === "partial") root.setStatus({ code: SpanStatusCode.ERROR })
  root.end(ms(record.finishedAt))
}

/** A heal as its agent reported it: the span ends at the report's time and lasts its duration. */
export function recordHealSpan(tracer: Tracer, event: FleetEvent): void {
  if (event.type !== "heal.succeeded" && event.type !== "heal.failed") return
  const end = ms(event.at)
  const duration = typeof event.data.durationMs === "number" ? event.data.durationMs : 0
  const span = tracer.startSpan("heal", {
    startTime: end - duration,
    attributes: {
      "chimera.node": event.nodeId ?? "",
      "chimera.heal.outcome": event.type === "heal.succeeded" ? "succeeded" : "failed",
      "chimera.heal.attempt": typeof event.data.attempt === "number" ? event.data.attempt : 0,
      "chimera.closure": typeof event.data.desired === "string" ? event.data.desired : "",
    },
  })
  if (event.type === "heal.failed")
    span.setStatus({ code: SpanStatusCode.ERROR, message: statusText(event.data.error) })
  span.end(end)
}
