// OpenTelemetry with real parts: a local OTLP/HTTP receiver (a Bun.serve on loopback that decodes the
// OTLP JSON the exporters send) stands in for the collector. A real deploy (testbed nodes with their own
// sshd, the real CLI) sends one trace whose spans cover build, and plan, copy, activate, health check and
// confirm for each target; a heal an agent reports becomes its own span on the control plane's side.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Server } from "bun"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import type { StorePath } from "../protocol/ids.ts"
import { call, enrollNode } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean }
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  startTimeUnixNano: string
  endTimeUnixNano: string
  attributes?: { key: string; value: AnyValue }[]
}
interface Received {
  path: string
  contentType: string | null
  body: {
    resourceSpans?: {
      resource: { attributes: { key: string; value: AnyValue }[] }
      scopeSpans: { spans: OtlpSpan[] }[]
    }[]
  }
}

let receiver: Server<undefined>
const received: Received[] = []
let work: string
let bed: Testbed
let gen1: StorePath

const spans = () =>
  received.flatMap((r) => r.body.resourceSpans ?? []).flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans))
const attr = (s: OtlpSpan, key: string) => s.attributes?.find((a) => a.key === key)?.value.stringValue
const serviceOf = (r: Received) =>
  r.body.resourceSpans?.[0]?.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue

beforeAll(async () => {
  receiver = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname
      if (req.method !== "POST" || (path !== "/v1/traces" && path !== "/v1/metrics"))
        return new Response("not found", { status: 404 })
      // The OTLP/HTTP exporters send JSON: anything else would not decode here and fails the test below.
      const contentType = req.headers.get("content-type")
      received.push({ path, contentType, body: (await req.json()) as Received["body"] })
      return Response.json({})
    },
  })
  work = await mkdtemp(join(tmpdir(), "chimera-otel-"))
  gen1 = await buildTestSystem(1, { tag: "otel" })
  bed = await createTestbed({ nodes: 2, boot: gen1 })
}, 180_000)

afterAll(async () => {
  await bed?.stop()
  receiver?.stop(true)
  await rm(work, { recursive: true, force: true })
})

describe("OpenTelemetry", () => {
  test("a deploy sends one trace: build, then plan, copy, activate, health and confirm for each target", async () => {
    const config = join(work, "gen2.nix")
    await writeFile(config, `import ${TEST_SYSTEM} { generation = "2"; tag = "otel"; }\n`)
    const settings = join(work, "chimera.toml")
    await writeFile(settings, `[telemetry]\nendpoint = "http://127.0.0.1:${receiver.port}"\ninsecure = true\n`)
    const r = await run(
      [
        process.execPath,
        MAIN,
        "deploy",
        "--targets",
        bed.nodes.map((n) => n.target).join(","),
        "--config",
        config,
        "--health-cmd",
        "test -L /run/current-system",
        "--identity",
        bed.identityFile,
        "--known-hosts",
        bed.knownHostsFile,
        "--json",
      ],
      {
        env: {
          CHIMERA_DATA_DIR: join(work, "data"),
          CHIMERA_URL: "",
          CHIMERA_TOKEN: "",
          CHIMERA_CONFIG_FILE: settings,
          NO_COLOR: "1",
        },
      },
    )
    expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" })
    // The CLI flushes before it exits: the trace is here already, without waiting.
    const traces = received.filter((x) => x.path === "/v1/traces" && serviceOf(x) === "chimera-cli")
    expect(traces.length).toBeGreaterThan(0)
    expect(traces.every((x) => x.contentType?.startsWith("application/json"))).toBe(true)
    const all = traces.flatMap((x) => x.body.resourceSpans ?? []).flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans))
    expect(new Set(all.map((s) => s.traceId)).size).toBe(1)
    const root = all.find((s) => s.parentSpanId === undefined || s.parentSpanId === "")
    expect(root?.name).toMatch(/^deploy [0-9a-z]{12}$/)
    expect(attr(root as OtlpSpan, "chimera.deploy.status")).toBe("succeeded")
    const children = (parent: OtlpSpan) => all.filter((s) => s.parentSpanId === parent.spanId)
    expect(
      children(root as OtlpSpan)
        .map((s) => s.name)
        .sort(),
    ).toEqual(["build", ...bed.nodes.map((n) => `target ${n.target}`)].sort())
    for (const node of bed.nodes) {
      const target = all.find((s) => s.name === `target ${node.target}`) as OtlpSpan
      const phases = children(target)
      expect(phases.map((s) => s.name)).toEqual(["plan", "copy", "activate", "health", "confirm"])
      for (const p of phases) {
        expect(BigInt(p.startTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(target.startTimeUnixNano))
        expect(BigInt(p.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(p.startTimeUnixNano))
      }
    }
    // The deploy's duration went out as a metric too.
    const metrics = received.filter((x) => x.path === "/v1/metrics")
    expect(JSON.stringify(metrics.map((m) => m.body))).toContain("chimera_deploy_duration_seconds")
  })

  test("a deploy the control plane runs (POST /api/deployments) sends its trace from there", async () => {
    const endpoint = `http://127.0.0.1:${receiver.port}`
    const targets = commandTargets(
      { nodes: bed.nodes.map((n) => ({ name: n.name, address: n.target, tags: [] })), targets: [] },
      { identity: bed.identityFile, knownHosts: bed.knownHostsFile },
    )
    await using cp = await startInProcess({ telemetry: { endpoint, insecure: true }, commandTargets: targets })
    // The nodes run gen2 since the test above: back to gen1, by closure, with a health check.
    const res = await call(cp, cp.adminToken, "POST", "/api/deployments", {
      targets: bed.nodes.map((n) => n.name),
      closure: gen1,
      health_cmd: ["test -L /run/current-system"],
    })
    expect(res.status).toBe(202)
    const { id } = (await res.json()) as { id: string }
    const root = await waitFor(
      "the control plane's deploy trace",
      async () => spans().find((s) => attr(s, "chimera.deploy.id") === id),
      (s) => s !== undefined,
      90_000,
    )
    expect(attr(root as OtlpSpan, "chimera.deploy.status")).toBe("succeeded")
    const phases = await waitFor(
      "every target's phases",
      async () =>
        bed.nodes.map((n) => {
          const target = spans().find((s) => s.traceId === root?.traceId && s.name === `target ${n.name}`)
          return spans()
            .filter((s) => target && s.parentSpanId === target.spanId)
            .map((s) => s.name)
        }),
      (all) => all.every((p) => p.length === 5),
    )
    expect(phases).toEqual(bed.nodes.map(() => ["plan", "copy", "activate", "health", "confirm"]))
  })

  test("a heal reported by an agent becomes its own span; API requests are spans named by route", async () => {
    const endpoint = `http://127.0.0.1:${receiver.port}`
    const cp = await startInProcess({ telemetry: { endpoint, insecure: true } })
    const credential = await enrollNode(cp, "web-9")
    const at = new Date().toISOString()
    const desired = gen1
    const reports = [
      { seq: 1, at, type: "heal.started", data: { desired, attempt: 1 } },
      { seq: 2, at, type: "heal.succeeded", data: { desired, attempt: 1, durationMs: 25 } },
    ]
    expect((await call(cp, credential, "POST", "/api/agent/web-9/reports", { reports })).status).toBe(200)
    // The control plane batches spans (every few seconds).
    const heal = await waitFor(
      "the heal span",
      async () => spans().find((s) => s.name === "heal" && attr(s, "chimera.node") === "web-9"),
      (s) => s !== undefined,
      30_000,
    )
    expect(attr(heal as OtlpSpan, "chimera.heal.outcome")).toBe("succeeded")
    const length = BigInt((heal as OtlpSpan).endTimeUnixNano) - BigInt((heal as OtlpSpan).startTimeUnixNano)
    expect(length).toBe(25_000_000n)
    expect(BigInt((heal as OtlpSpan).endTimeUnixNano) / 1_000_000n).toBe(BigInt(Date.parse(at)))
    const request = spans().find((s) => s.name === "POST /api/agent/:nodeId/reports")
    expect(request).toBeDefined()
    expect(spans().some((s) => s.name.includes("web-9") && s.name !== "heal")).toBe(false)
    // Stopping flushes the metrics too: the same series /metrics shows, by their OpenTelemetry names.
    await cp.stop()
    const metrics = JSON.stringify(
      received.filter((x) => x.path === "/v1/metrics" && JSON.stringify(x.body).includes("chimera-control-plane")),
    )
    for (const name of ["chimera_heals", "chimera_heal_duration_seconds", "chimera_http_requests", "chimera_nodes"])
      expect(metrics).toContain(`"name":"${name}"`)
  })

  test("an http:// endpoint without insecure is refused at start, with the setting to change", async () => {
    const settings = join(work, "plain.toml")
    await writeFile(settings, `[telemetry]\nendpoint = "http://127.0.0.1:${receiver.port}"\n`)
    const r = await run([process.execPath, MAIN, "web", "--port", "1"], {
      env: { CHIMERA_DATA_DIR: join(work, "refused"), CHIMERA_CONFIG_FILE: settings },
    })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("telemetry.endpoint: http:// sends traces in plain text")
    expect(r.stderr).toContain("telemetry.insecure = true")
  })
})
