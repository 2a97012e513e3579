// A span's error status leaves Chimera for the collector: a failed heal's error and a deploy target's
// are a node's or a command's own words, and reach it redacted, as the API shows them.
import { expect, test } from "bun:test"
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { StorePath } from "../../../protocol/ids.ts"
import type { DeploymentRecord } from "../../domain/deployment-record.ts"
import { recordDeployTrace, recordHealSpan } from "./spans.ts"

const CLOSURE = StorePath.parse("/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1")
const TOKEN = `chm_api_${"C".repeat(43)}`
const ERROR = `activation: PGPASSWORD=hunter2hunter2 psql ${TOKEN} 'https://ci:cachepass99@cache.example.org/x'`

function tracer() {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  return { tracer: provider.getTracer("test"), statuses: () => exporter.getFinishedSpans().map((s) => s.status) }
}

test("a failed heal's and a failed target's errors reach the collector redacted", () => {
  const t = tracer()
  const at = new Date().toISOString()
  recordHealSpan(t.tracer, {
    id: 1,
    type: "heal.failed",
    nodeId: "db-1",
    at,
    data: { desired: CLOSURE, attempt: 1, durationMs: 5, error: ERROR, output: "", retryInMs: null },
  })
  const record: DeploymentRecord = {
    id: "d-1",
    kind: "deploy",
    createdAt: at,
    finishedAt: at,
    configPath: "/etc/nixos/configuration.nix",
    closure: CLOSURE,
    hash: "yqjaw21d05si79hnrp0rfzyhb7403rdm",
    isSystem: true,
    command: null,
    session: "s",
    status: "failed",
    targets: [
      {
        target: "db-1",
        status: "failed",
        before: null,
        copy: null,
        previous: null,
        error: ERROR,
        timings: [],
        startedAt: at,
        ms: 1,
        log: [],
      },
    ],
  }
  recordDeployTrace(t.tracer, record)
  const messages = t.statuses().flatMap((s) => (s.message ? [s.message] : []))
  expect(messages).toHaveLength(2)
  for (const m of messages) {
    for (const secret of ["hunter2hunter2", TOKEN, "cachepass99"]) expect(m).not.toContain(secret)
    expect(m).toContain("PGPASSWORD=[redacted]")
  }
})
