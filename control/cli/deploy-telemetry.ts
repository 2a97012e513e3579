// A deploy runs in the CLI's process, not the control plane's, so the CLI sends its own trace: when
// `[telemetry] endpoint` is set, the finished deploy's record becomes one trace (the deploy, its build,
// each target and its phases) and one observation of chimera_deploy_duration_seconds, flushed before
// the command exits. Without an endpoint nothing of OpenTelemetry is loaded. A collector that cannot
// be reached costs a warning, never the deploy's exit code: the nodes have changed either way.

import { loadConfig } from "../config.ts"
import type { DeploymentRecord } from "../domain/deployment-record.ts"
import { color, field, warn } from "./output.ts"

export async function exportDeployTrace(record: DeploymentRecord): Promise<void> {
  const settings = loadConfig().telemetry
  if (settings.endpoint.trim() === "") return
  try {
    const { startTelemetry } = await import("../adapters/telemetry/otel.ts")
    const { recordDeployTrace } = await import("../adapters/telemetry/spans.ts")
    const telemetry = await startTelemetry(settings, "chimera-cli")
    if (!telemetry) return
    recordDeployTrace(telemetry.tracer, record)
    const seconds = (Date.parse(record.finishedAt) - Date.parse(record.createdAt)) / 1000
    telemetry.sink.record("deployDuration", seconds, { kind: record.kind, status: record.status })
    await telemetry.shutdown()
  } catch (error) {
    warn(`${color.yellow("warning")} the deploy trace was not exported: ${field((error as Error).message)}\n`)
  }
}
