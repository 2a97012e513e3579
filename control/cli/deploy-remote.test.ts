// `deploy --via-control-plane` when the event stream lets it down: a stream that drops mid-deploy and
// is then refused, and one that carries again what was printed already. Every step still prints
// once, in order: the events list is read from the last id seen. The control plane here is a
// stand-in at the HTTP boundary (tests/mcp.test.ts follows real deploys on a real one).
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test"
import type { FleetEvent } from "../domain/events.ts"
import { deployViaControlPlane } from "./deploy-remote.ts"
import { globals } from "./globals.ts"

const ID = "20261206015253-79e01c56"

const progress = (id: number, deployment: string, target: string, phase: string, message: string): FleetEvent => ({
  id,
  type: "deployment.progress",
  nodeId: null,
  at: "2026-12-06T01:52:53.000Z",
  data: { id: deployment, target, phase, message },
})

/** What the control plane stores: before the stream drops, and after (with the deployment's end). */
const EARLY = [
  progress(11, ID, "node-a", "plan", "0 path(s) to copy, 0 bytes"),
  progress(12, "another-deploy", "node-x", "plan", "up to date"),
  progress(13, ID, "node-b", "plan", "0 path(s) to copy, 0 bytes"),
]
const LATE: FleetEvent[] = [
  progress(14, ID, "node-a", "copy", "copied in 3 ms"),
  progress(15, ID, "node-b", "copy", "copied in 4 ms"),
  { id: 16, type: "deployment.finished", nodeId: null, at: "2026-12-06T01:52:54.000Z", data: { id: ID } },
]

const frame = (e: FleetEvent) => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`

/**
 * A control plane whose first event stream carries EARLY and drops, as LATE happens. `again` is what
 * comes after: streams refused (the deployment ends soon after the drop), or the events list failing
 * until a second stream opens, which carries every event from the first (it ignores `after`, so the
 * client must tell the events it printed already) and after which the deployment ends.
 */
function standIn(again: "refused" | "replays-all") {
  const store = [...EARLY]
  const listedAfter: number[] = []
  let streams = 0
  let ended = false
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url)
      const path = url.pathname
      if (path === "/api/events/last-id") return Response.json({ lastEventId: 10 })
      if (path === "/api/deployments" && req.method === "POST") return Response.json({ id: ID }, { status: 202 })
      if (path === `/api/deployments/${ID}`)
        return Response.json(
          ended
            ? { id: ID, kind: "deploy", status: "succeeded", targets: [] }
            : { id: ID, status: "running", createdAt: "", targets: ["node-a", "node-b"], progress: {} },
        )
      if (path === "/api/events") {
        if (again === "replays-all" && streams < 2)
          return Response.json({ error: "the store is away", code: "PROVIDER_UNAVAILABLE" }, { status: 503 })
        const after = Number(url.searchParams.get("after"))
        listedAfter.push(after)
        return Response.json({ events: store.filter((e) => e.id > after) })
      }
      if (path === "/api/events/stream") {
        streams++
        if (streams > 1 && again === "refused")
          return Response.json({ error: "too many event streams", code: "RESOURCE_EXHAUSTED" }, { status: 429 })
        const events = streams === 1 ? EARLY : store
        if (streams === 1) store.push(...LATE)
        if (streams === (again === "refused" ? 1 : 2))
          setTimeout(() => {
            ended = true
          }, 300)
        return new Response(`event: ready\ndata: {}\n\n${events.map(frame).join("")}`, {
          headers: { "content-type": "text/event-stream" },
        })
      }
      return Response.json({ error: "not here", code: "NOT_FOUND" }, { status: 404 })
    },
  })
  return {
    url: `http://127.0.0.1:${server.port}`,
    listedAfter,
    streams: () => streams,
    [Symbol.dispose]: () => void server.stop(true),
  }
}

const deployOpts = {
  targets: "node-a,node-b",
  config: "/nix/store/wi6rh8nbq7wb5jnhzccqkkk341v4h5k2-web-test-system-2",
  command: null,
  session: "chimera-deploy",
  confirmTimeout: 30,
  activationTimeout: 300,
  healthTimeout: 20,
  healthCmd: [],
  healthUrl: [],
  dryRun: false,
  force: false,
  json: false,
}

const EXPECTED = [
  "node-a: plan: 0 path(s) to copy, 0 bytes",
  "node-b: plan: 0 path(s) to copy, 0 bytes",
  "node-a: copy: copied in 3 ms",
  "node-b: copy: copied in 4 ms",
]

describe("deploy --via-control-plane follows the deployment's events", () => {
  const saved = { url: process.env.CHIMERA_URL, token: process.env.CHIMERA_TOKEN, tty: process.stdout.isTTY }
  let written: string[]
  beforeEach(() => {
    written = []
    // As a plain `chimera deploy` runs, whatever flags an earlier test in this process took.
    globals.verbose = false
    // Lines, not a spinner, as when stdout is not a terminal.
    process.stdout.isTTY = false
    spyOn(process.stderr, "write").mockImplementation((chunk: unknown) => {
      written.push(String(chunk))
      return true
    })
  })
  afterEach(() => {
    ;(process.stderr.write as unknown as { mockRestore(): void }).mockRestore()
    process.stdout.isTTY = saved.tty
    for (const [name, value] of [
      ["CHIMERA_URL", saved.url],
      ["CHIMERA_TOKEN", saved.token],
    ] as const)
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
  })
  const run = async (cp: { url: string }) => {
    process.env.CHIMERA_URL = cp.url
    process.env.CHIMERA_TOKEN = "test-token"
    const record = await deployViaControlPlane(deployOpts)
    return {
      record,
      lines: written
        .join("")
        .split("\n")
        .filter((l) => l !== ""),
    }
  }

  test("a stream that drops, then is refused: the events list goes on from the last id seen", async () => {
    using cp = standIn("refused")
    const { record, lines } = await run(cp)
    expect(record.status).toBe("succeeded")
    expect(lines).toEqual(EXPECTED)
    // The list is read after the last event the stream carried (another deployment's counts too).
    expect(cp.listedAfter[0]).toBe(13)
  })

  test("a stream that carries again what was printed: each step still prints once", async () => {
    using cp = standIn("replays-all")
    const { record, lines } = await run(cp)
    expect(record.status).toBe("succeeded")
    expect(lines).toEqual(EXPECTED)
    expect(cp.streams()).toBe(2)
  })
})
