// The MCP server against a real control plane and a testbed of real sshd nodes with agents, driven by
// the official SDK's client over Streamable HTTP and over stdio (the real `chimera mcp --stdio`
// process): tools and resources listed by role, a deploy to three nodes, congruence from what the
// agents report, a rollback the agents keep, the audit rows, and a thousand malformed messages.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { ElicitRequestSchema, ResourceListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js"
import fc from "fast-check"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import type { CommandTargets } from "../control/domain/command-service.ts"
import { serveMcpHttp } from "../control/mcp/http.ts"
import type { StorePath } from "../protocol/ids.ts"
import { startAgent } from "./support/agent-process.ts"
import { addUser, call, enrollNode, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { buildTestSystem } from "./support/nix-fixtures.ts"
import { createTestNode } from "./support/test-node.ts"
import { createTestbed, type Testbed } from "./support/testbed.ts"
import { waitFor } from "./support/wait.ts"

setDefaultTimeout(120_000)

const MAIN = join(import.meta.dir, "../control/main.ts")
const TEST_SYSTEM = join(import.meta.dir, "../nix/test-system.nix")

let work: string
let cp: TestControlPlane
let bed: Testbed
let mcp: ReturnType<typeof serveMcpHttp>
let gen1: StorePath
let gen2: StorePath
let gen2Config: string
let viewer: string
let operator: string
let names: string[]

// The control plane starts before the testbed (its agents need join tokens), so the SSH targets it
// reaches are handed over once the testbed is up.
let inner: CommandTargets | null = null
const lateTargets: CommandTargets = {
  resolve: (n) => inner?.resolve(n) ?? null,
  resolveAll: (s) => inner?.resolveAll(s) ?? [],
  names: () => inner?.names() ?? [],
  get executor() {
    if (!inner) throw new Error("testbed not up yet")
    return inner.executor
  },
}

type Structured = { status: string; message: string; targets: string[]; results?: Record<string, unknown>[] }

async function httpClient(token: string, opts: { elicit?: boolean } = {}) {
  const client = new Client(
    { name: "chimera-test", version: "1" },
    { capabilities: opts.elicit ? { elicitation: { form: {} } } : {} },
  )
  await client.connect(
    new StreamableHTTPClientTransport(new URL(mcp.url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  return client
}

/** Answers every elicitation yes, keeping what was asked: a human who approves. */
function approveAll(client: Client): string[] {
  const asked: string[] = []
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    asked.push(req.params.message)
    return { action: "accept", content: { approve: true } }
  })
  return asked
}

async function callTool(client: Client, name: string, args: Record<string, unknown>) {
  const r = await client.callTool({ name, arguments: args })
  return { isError: r.isError === true, s: r.structuredContent as Structured, text: JSON.stringify(r.content) }
}

/** An initialize request, as the first line a client sends. */
const INITIALIZE = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } },
}

/** An initialize request's body that sends its first bytes at once and the rest once `released`. */
const slowInitialize = (released: Promise<void>) => {
  const text = JSON.stringify(INITIALIZE)
  return new ReadableStream<Uint8Array>({
    async start(c) {
      c.enqueue(new TextEncoder().encode(text.slice(0, 10)))
      await released
      c.enqueue(new TextEncoder().encode(text.slice(10)))
      c.close()
    },
  })
}

/** The real `chimera mcp --stdio`, its pipes open, for the control plane under test with `token`. */
const stdioServer = (token: string) =>
  Bun.spawn([process.execPath, MAIN, "mcp", "--stdio"], {
    env: { ...process.env, CHIMERA_URL: cp.url, CHIMERA_TOKEN: token, CHIMERA_CONFIG_FILE: "" },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "ignore",
  })

async function nodeHealth(client: Client) {
  const r = await client.readResource({ uri: "node://health" })
  const first = r.contents[0] as { text: string }
  return JSON.parse(first.text) as { nodes: { id: string; status: string; current: string; desired: string }[] }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-mcp-"))
  ;[gen1, gen2] = (await Promise.all([1, 2].map((g) => buildTestSystem(g, { tag: "mcp" })))) as [StorePath, StorePath]
  gen2Config = join(work, "web-gen2.nix")
  await writeFile(gen2Config, `import ${TEST_SYSTEM} { generation = "2"; tag = "mcp"; }\n`)
  cp = await startInProcess({ commandTargets: lateTargets })
  const tokens: string[] = []
  // Each for its node: the nodes are [fleet.nodes] machines (lateTargets), which a token for no node
  // in particular may not enrol.
  for (let i = 1; i <= 3; i++) {
    const res = await cp.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId: `mcp-${i}` }) })
    tokens.push(((await res.json()) as { token: string }).token)
  }
  bed = await createTestbed({
    nodes: 3,
    boot: gen1,
    prefix: "mcp",
    // mcp-3 does not heal itself, so a hand-made switch on it stays for congruence to see.
    agent: { controlUrl: cp.url, joinTokens: tokens, argsFor: (n) => (n === "mcp-3" ? ["--no-auto-heal"] : []) },
  })
  inner = commandTargets(
    { nodes: bed.nodes.map((n) => ({ name: n.name, address: n.target, tags: ["mcp"] })), targets: [] },
    { identity: bed.identityFile, knownHosts: bed.knownHostsFile },
  )
  names = bed.nodes.map((n) => n.name)
  for (const n of names) {
    await waitFor(
      `${n} enrolled`,
      async () => (await cp.api(`/api/nodes/${n}`)).status,
      (s) => s === 200,
    )
    await cp.api(`/api/nodes/${n}/desired`, { method: "PUT", body: JSON.stringify({ closure: gen1 }) })
  }
  await addUser(cp, "vera", "viewer")
  await addUser(cp, "otto", "operator")
  viewer = await login(cp, "vera")
  operator = await login(cp, "otto")
  mcp = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url })
}, 180_000)

afterAll(async () => {
  await mcp?.stop()
  await bed?.stop()
  await cp?.stop()
  await rm(work, { recursive: true, force: true })
})

/** How many resources/list_changed notifications `client` has heard since this was called. */
function listChanges(client: Client): () => number {
  let heard = 0
  client.setNotificationHandler(ResourceListChangedNotificationSchema, async () => {
    heard++
  })
  return () => heard
}

describe("MCP over Streamable HTTP", () => {
  test("deploys to three agent nodes, sees them healthy, checks congruence, rolls back one, and audits each call", async () => {
    const client = await httpClient(cp.adminToken, { elicit: true })
    const asked = approveAll(client)
    expect(client.getServerVersion()?.name).toBe("chimera-service")
    // The client's model is told what the server is for, and that the fleet's text is data, not orders.
    expect(client.getInstructions()).toContain("it never is one")
    const tools = (await client.listTools()).tools
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        "check_congruence",
        "execute_deployment",
        "get_node",
        "list_deployments",
        "list_events",
        "list_nodes",
        "rollback_deployment",
        "run_command",
        "set_desired_closure",
      ].sort(),
    )
    const deployTool = tools.find((t) => t.name === "execute_deployment")
    expect(deployTool?.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true })
    expect(deployTool?.inputSchema.required).toEqual(expect.arrayContaining(["config_path", "targets"]))
    expect(tools.find((t) => t.name === "list_nodes")?.annotations?.readOnlyHint).toBe(true)
    const resources = (await client.listResources()).resources.map((r) => r.uri)
    expect(resources).toEqual(expect.arrayContaining(["node://health", ...names.map((n) => `node://${n}`)]))
    const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)
    expect(templates).toEqual(expect.arrayContaining(["deployment://{session_id}", "node://{id}"]))

    const deployed = await callTool(client, "execute_deployment", { config_path: gen2Config, targets: names })
    expect(deployed.isError).toBe(false)
    expect(deployed.s).toMatchObject({ status: "success", targets: names })
    const deploymentId = (deployed.s as unknown as { deployment: string }).deployment
    const record = await client.readResource({ uri: `deployment://${deploymentId}` })
    expect(JSON.parse((record.contents[0] as { text: string }).text)).toMatchObject({
      id: deploymentId,
      status: "succeeded",
      closure: gen2,
    })

    await waitFor(
      "every node healthy on generation 2 in node://health",
      () => nodeHealth(client),
      (h) =>
        names.every((n) =>
          h.nodes.some((x) => x.id === n && x.status === "healthy" && x.current === gen2 && x.desired === gen2),
        ),
    )

    const congruent = await callTool(client, "check_congruence", { targets: names, config_path: gen2Config })
    expect(congruent.s.status).toBe("success")
    // A read-only tool that builds a Nix file on the control plane's host asks first; the deploy (a
    // mutating tool, which clients confirm themselves) did not.
    expect(asked).toEqual([expect.stringContaining(`check_congruence builds ${gen2Config}`)])
    expect(congruent.s.results?.map((r) => r.status)).toEqual(["congruent", "congruent", "congruent"])

    // A hand-made switch on the node that does not heal itself: named as drifted once its agent tells.
    const drifting = bed.nodes[2]!
    await drifting.node.switchTo(gen1)
    const drifted = await waitFor(
      "mcp-3 reported drifted",
      () => callTool(client, "check_congruence", { targets: names, config_path: gen2Config }),
      (r) => r.s.results?.find((x) => x.target === "mcp-3")?.status === "drifted",
    )
    expect(drifted.s.results?.filter((x) => x.status === "congruent").map((x) => x.target)).toEqual(["mcp-1", "mcp-2"])
    expect(drifted.s.message).toContain("mcp-3 drifted")

    // Roll mcp-1 back: it goes to generation 1, and its agent keeps it because its desired closure follows.
    const rolled = await callTool(client, "rollback_deployment", { targets: ["mcp-1"] })
    expect(rolled.s).toMatchObject({ status: "success", targets: ["mcp-1"] })
    const view = (await (await cp.api("/api/nodes/mcp-1")).json()) as { desiredPath: string }
    expect(view.desiredPath).toBe(gen1)
    await Bun.sleep(3000) // several agent reaction times: a heal back to generation 2 would have happened
    expect(await bed.nodes[0]!.node.links()).toMatchObject({ profile: gen1, current: gen1 })
    await waitFor(
      "mcp-1 healthy on generation 1",
      () => nodeHealth(client),
      (h) => h.nodes.some((x) => x.id === "mcp-1" && x.status === "healthy" && x.current === gen1),
    )

    const audit = (await (await cp.api("/api/audit?limit=1000")).json()) as {
      entries: { actor: string; action: string; status: number; detail: { via?: string } | null }[]
    }
    const viaMcp = audit.entries.filter((e) => e.detail?.via === "mcp")
    for (const action of ["POST /api/deployments", "POST /api/congruence", "POST /api/rollbacks"])
      expect(viaMcp.filter((e) => e.action === action).length).toBeGreaterThan(0)
    expect(viaMcp.every((e) => e.actor === "bootstrap admin" && e.status < 300)).toBe(true)
    await client.close()
  })

  test("a viewer lists only read-only tools and cannot call a mutating one; no token is a 401", async () => {
    const client = await httpClient(viewer)
    const tools = (await client.listTools()).tools
    expect(tools.length).toBeGreaterThan(0)
    expect(tools.every((t) => t.annotations?.readOnlyHint === true)).toBe(true)
    expect(tools.map((t) => t.name)).not.toContain("execute_deployment")
    // A tool the role is not offered is unknown to its session: the specification's protocol error.
    const refused = await client
      .callTool({ name: "set_desired_closure", arguments: { node_id: "mcp-1", closure: gen2 } })
      .then(
        () => null,
        (e: { code?: number; message: string }) => e,
      )
    expect(refused?.code).toBe(-32602)
    expect(refused?.message).toContain("set_desired_closure")
    await client.close()

    const post = (headers: Record<string, string>) =>
      fetch(mcp.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
        body: JSON.stringify(INITIALIZE),
      })
    const none = await post({})
    expect(none.status).toBe(401)
    expect(none.headers.get("www-authenticate")).toContain("Bearer")
    expect((await post({ authorization: "Bearer chm_api_not-a-real-token" })).status).toBe(401)
    expect((await post({ authorization: `Bearer ${viewer}`, origin: "http://evil.example" })).status).toBe(403)
    // DNS rebinding: the page's name resolves to this server, and Host and Origin both carry that name.
    const port = new URL(mcp.url).port
    const rebound = await post({
      authorization: `Bearer ${viewer}`,
      host: `evil.example:${port}`,
      origin: `http://evil.example:${port}`,
    })
    expect(rebound.status).toBe(403)
    expect(((await rebound.json()) as { error: string }).error).toContain("is not this server's")
    // The loopback names of a server on loopback are its own.
    const local = await post({ authorization: `Bearer ${viewer}`, host: `localhost:${port}` })
    expect(local.status).toBe(200)
    await local.body?.cancel()
  })

  test("the Host check reads names as parsed, and takes a proxy's name from allowed_hosts", async () => {
    // Written long or in capitals, the server's own address is still its name.
    const other = serveMcpHttp({
      host: "0:0:0:0:0:0:0:1",
      port: 0,
      controlUrl: cp.url,
      allowedHosts: ["MCP.Example.internal"],
    })
    try {
      const post = (host: string) =>
        fetch(other.url, {
          method: "POST",
          headers: { "content-type": "application/json", host, authorization: "Bearer chm_api_not-a-real-token" },
          body: "{}",
        })
      const port = new URL(other.url).port
      // Past the Host check, the made-up token is what is refused.
      expect((await post(`[::1]:${port}`)).status).toBe(401)
      expect((await post(`localhost:${port}`)).status).toBe(401)
      expect((await post("mcp.example.internal")).status).toBe(401)
      expect((await post("mcp.example.internal:443")).status).toBe(401)
      expect((await post(`evil.example:${port}`)).status).toBe(403)
    } finally {
      await other.stop()
    }
  })

  test("reading a node that does not exist is the client's error, never an internal one", async () => {
    const client = await httpClient(viewer)
    const codeOf = (uri: string) =>
      client.readResource({ uri }).then(
        () => "read",
        (error: { code?: number }) => error.code,
      )
    expect(await codeOf("node://no-such-node")).toBe(-32002) // the specification's "Resource not found"
    // The client's error says what went wrong once, after its own "MCP error -32002: ".
    const message = await client.readResource({ uri: "node://no-such-node" }).then(
      () => "read",
      (error: Error) => error.message,
    )
    expect(message).toMatch(/^MCP error -32002: \S/)
    expect(message.match(/MCP error/g)).toHaveLength(1)
    const odd = await codeOf("node://..%2F..")
    expect([-32002, -32602]).toContain(odd as number)
    await client.close()
  })

  test("list_events answers the fleet's latest events, newest last, not its oldest", async () => {
    const client = await httpClient(viewer)
    // Events of its own, on a node no agent runs, so that there are more than the page asks for.
    await enrollNode(cp, "events-1")
    for (const closure of [gen1, gen2, gen1]) {
      const set = await cp.api("/api/nodes/events-1/desired", { method: "PUT", body: JSON.stringify({ closure }) })
      expect(set.status).toBe(200)
    }
    const all = (await (await cp.api("/api/events?limit=1000")).json()) as { events: { id: number }[] }
    const ids = all.events.map((e) => e.id)
    expect(ids.length).toBeGreaterThan(2)
    const r = await client.callTool({ name: "list_events", arguments: { limit: 2 } })
    const result = (r.structuredContent as { result: { events: { id: number }[] } }).result
    expect(result.events.map((e) => e.id)).toEqual(ids.slice(-2))
    await client.close()
  })

  test("a client hears that the resource list changed when a node enrols", async () => {
    const client = await httpClient(viewer)
    const changed = listChanges(client)
    // The server follows the event stream from the session's start; give it a moment to be attached.
    await waitFor(
      "stream attached",
      async () => (await client.listResources()).resources.length,
      (n) => n > 0,
    )
    await Bun.sleep(500)
    await enrollNode(cp, "mcp-late")
    await waitFor(
      "list_changed notification",
      async () => changed(),
      (n) => n > 0,
    )
    expect((await client.listResources()).resources.map((r) => r.uri)).toContain("node://mcp-late")
    await client.close()
  })

  test("a client hears that the resource list changed when a node is removed", async () => {
    await enrollNode(cp, "mcp-gone")
    const client = await httpClient(viewer)
    const changed = listChanges(client)
    await waitFor(
      "stream attached",
      async () => (await client.listResources()).resources.map((r) => r.uri),
      (uris) => uris.includes("node://mcp-gone"),
    )
    await Bun.sleep(500)
    expect((await cp.api("/api/nodes/mcp-gone", { method: "DELETE" })).status).toBe(200)
    await waitFor(
      "list_changed notification",
      async () => changed(),
      (n) => n > 0,
    )
    expect((await client.listResources()).resources.map((r) => r.uri)).not.toContain("node://mcp-gone")
    await client.close()
  })

  test("a high-risk command asks the human through elicitation, and is refused where the client cannot ask", async () => {
    const cannot = await httpClient(cp.adminToken)
    const refused = await callTool(cannot, "run_command", {
      command: "rm -rf /tmp/chimera-mcp-canary",
      nodes: ["mcp-1"],
    })
    expect(refused.isError).toBe(true)
    expect(refused.s.message).toContain("elicitation")
    // A read-only tool that would build a Nix file on the control plane's host is refused the same way.
    const build = await callTool(cannot, "check_congruence", { targets: ["mcp-1"], config_path: gen2Config })
    expect(build.isError).toBe(true)
    expect(build.s.message).toContain(`check_congruence builds ${gen2Config} on the control plane's host`)
    expect(build.s.message).toContain("elicitation")
    await cannot.close()

    const asks = await httpClient(cp.adminToken, { elicit: true })
    const asked: string[] = []
    asks.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params.message)
      return { action: "decline" }
    })
    const declined = await callTool(asks, "run_command", {
      command: "rm -rf /tmp/chimera-mcp-canary",
      nodes: ["mcp-1"],
    })
    expect(asked.length).toBe(1)
    expect(asked[0]).toContain("high risk")
    expect(declined.s.message).toContain("not approved")
    // The human reads the command as it would run: a carriage return and an erase-line sequence in it
    // cannot wipe `rm -rf …` off a terminal and leave `uptime` to approve.
    await callTool(asks, "run_command", {
      command: "rm -rf /tmp/chimera-mcp-canary #\r\x1b[2Kuptime",
      nodes: ["mcp-1"],
    })
    expect(asked[1]).toContain("rm -rf /tmp/chimera-mcp-canary #\\r\\x1b[2Kuptime")
    expect(asked[1]?.includes("\r") || asked[1]?.includes("\x1b")).toBe(false)
    // The reasons quote the command's words too: a bidi override in one cannot turn the question around.
    await callTool(asks, "run_command", { command: "systemctl 'x\u202eyb'", nodes: ["mcp-1"] })
    expect(asked[2]).toContain("high risk")
    expect(asked[2]?.includes("\u202e")).toBe(false)
    // An operator's low-risk command runs at once, through the relay, with the node's real output.
    await asks.close()
    const ops = await httpClient(operator)
    const ran = await callTool(ops, "run_command", { command: "readlink /run/current-system", nodes: ["mcp-2"] })
    expect(ran.isError).toBe(false)
    expect(ran.text).toContain(gen2.slice(11))
    await ops.close()
  })

  test("a user keeps its 8 newest sessions, whatever logins it opens them with: a client that never ends one fills nothing", async () => {
    const headersOf = (token: string) => ({
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    })
    // Each a login of its own (as refreshing gives): counted per user, not per credential.
    const opened: { id: string; token: string }[] = []
    for (let i = 0; i < 12; i++) {
      const token = i % 3 === 0 ? viewer : await login(cp, "vera")
      const res = await fetch(mcp.url, { method: "POST", headers: headersOf(token), body: JSON.stringify(INITIALIZE) })
      expect(res.status).toBe(200)
      opened.push({ id: res.headers.get("mcp-session-id") as string, token })
      await res.body?.cancel()
    }
    const ping = ({ id, token }: { id: string; token: string }) =>
      fetch(mcp.url, {
        method: "POST",
        headers: { ...headersOf(token), "mcp-session-id": id, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }),
      }).then(async (r) => {
        await r.body?.cancel()
        return r.status
      })
    const statuses = await Promise.all(opened.map(ping))
    expect(statuses).toEqual([...Array(4).fill(404), ...Array(8).fill(200)])
  })

  test("initializes sent at once, their bodies slow, still leave a user 8 sessions: one viewer cannot fill the server", async () => {
    const own = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url })
    try {
      const token = await login(cp, "vera")
      const headers = {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      }
      // Each body arrives after every request's headers were read and its credential vouched for.
      const release = Promise.withResolvers<void>()
      const slowBody = () => slowInitialize(release.promise)
      const opening = Array.from({ length: 20 }, () =>
        fetch(own.url, { method: "POST", headers, body: slowBody(), duplex: "half" } as RequestInit).then(async (r) => {
          await r.body?.cancel()
          return r.status
        }),
      )
      await Bun.sleep(1000)
      release.resolve()
      expect(await Promise.all(opening)).toEqual(Array(20).fill(200))
      expect(own.sessions()).toBe(8)
    } finally {
      await own.stop()
    }
  })

  test("initializes of several users sent at once, their bodies slow, stay within the server's cap", async () => {
    const own = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url, maxSessions: 4 })
    try {
      const release = Promise.withResolvers<void>()
      const slowBody = () => slowInitialize(release.promise)
      const open = (token: string) =>
        fetch(own.url, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
          },
          body: slowBody(),
          duplex: "half",
        } as RequestInit).then(async (r) => {
          await r.body?.cancel()
          return r.status
        })
      // Three each, within either user's own 8: only the server's cap of 4 can refuse any.
      const tokens = [await login(cp, "vera"), await login(cp, "otto")]
      const opening = tokens.flatMap((token) => [open(token), open(token), open(token)])
      await Bun.sleep(1000)
      release.resolve()
      const statuses = await Promise.all(opening)
      // Before: each was let in while none was stored yet, and all six were (6 sessions under a cap of 4).
      expect(own.sessions()).toBe(4)
      expect(statuses.toSorted()).toEqual([200, 200, 200, 200, 429, 429])
    } finally {
      await own.stop()
    }
  })

  test("a session whose login is revoked ends at its next request", async () => {
    const short = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url })
    try {
      const token = await login(cp, "vera")
      const headers = {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      }
      const init = await fetch(short.url, { method: "POST", headers, body: JSON.stringify(INITIALIZE) })
      const id = init.headers.get("mcp-session-id") as string
      await init.body?.cancel()
      const ping = () =>
        fetch(short.url, {
          method: "POST",
          headers: { ...headers, "mcp-session-id": id, "mcp-protocol-version": "2025-06-18" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }),
        })
      expect((await ping()).status).toBe(200)
      expect((await call(cp, token, "POST", "/api/auth/revoke", {})).status).toBe(200)
      const refused = await ping()
      expect(refused.status).toBe(401)
      // The session is gone, not only this request refused.
      expect((await ping()).status).toBe(404)
      expect(short.sessions()).toBe(0)
    } finally {
      await short.stop()
    }
  })

  test("a session whose token is revoked is refused at once: tools/list and resources/list as much as calls", async () => {
    const minted = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "mcp-revoked", role: "viewer" })
    const { id, token } = (await minted.json()) as { id: string; token: string }
    const client = await httpClient(token)
    try {
      expect((await client.listTools()).tools.length).toBeGreaterThan(0)
      expect((await client.listResources()).resources.length).toBeGreaterThan(0)
      expect((await call(cp, cp.adminToken, "DELETE", `/api/tokens/${id}`)).status).toBe(200)
      // The very next request, though the list needs nothing from the API; the session ends with it.
      expect(await client.listTools().then(() => "answered", String)).toContain("the API token is unknown or revoked")
      expect(await client.listResources().then(() => "answered", String)).not.toBe("answered")
      const called = await callTool(client, "list_nodes", {}).then((r) => (r.isError ? "refused" : "answered"), String)
      expect(called).not.toBe("answered")
    } finally {
      await client.close()
    }
  })

  test("a call cancelled while its approval is pending never runs; the question comes on the call's own stream", async () => {
    // No standalone GET stream: the question must come with the call (a client need not open one).
    const client = new Client({ name: "chimera-test", version: "1" }, { capabilities: { elicitation: { form: {} } } })
    const transport = new StreamableHTTPClientTransport(new URL(mcp.url), {
      requestInit: { headers: { authorization: `Bearer ${cp.adminToken}` } },
    })
    await client.connect(transport)
    const { promise: question, resolve: asked } = Promise.withResolvers<void>()
    const { promise: approved, resolve: approve } = Promise.withResolvers<void>()
    client.setRequestHandler(ElicitRequestSchema, async () => {
      asked()
      await approved
      return { action: "accept", content: { approve: true } }
    })
    const stop = new AbortController()
    const command = "rm -rf /tmp/chimera-mcp-cancelled-canary"
    const call = client
      .callTool({ name: "run_command", arguments: { command, nodes: ["mcp-1"] } }, undefined, { signal: stop.signal })
      .catch((error: Error) => error)
    await question
    stop.abort("the user pressed stop")
    approve()
    expect(await call).toBeInstanceOf(Error)
    await Bun.sleep(500)
    const audit = (await (await cp.api("/api/audit?limit=1000")).json()) as { entries: unknown[] }
    expect(audit.entries.filter((e) => JSON.stringify(e).includes("mcp-cancelled-canary"))).toEqual([])
    await client.close()
  })

  test("1,000 malformed JSON-RPC messages and tool arguments get errors, and the server stays up", async () => {
    const client = await httpClient(cp.adminToken)
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId as string
    const headers = {
      authorization: `Bearer ${cp.adminToken}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": sessionId,
      "mcp-protocol-version": "2025-06-18",
    }
    const hostile = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc
        .record({
          jsonrpc: fc.constant("2.0"),
          id: fc.integer(),
          method: fc.string({ maxLength: 40 }),
          params: fc.jsonValue({ maxDepth: 3 }),
        })
        .map((v) => JSON.stringify(v)),
      fc
        .record({
          name: fc.constantFrom(
            "execute_deployment",
            "check_congruence",
            "get_node",
            "run_command",
            "rollback_deployment",
            "no_such_tool",
          ),
          arguments: fc.oneof(
            fc.jsonValue({ maxDepth: 3 }),
            fc.record({
              targets: fc.array(
                fc.oneof(fc.string(), fc.constantFrom("root@10.0.0.1:22", "$(reboot)", "../../etc", "a".repeat(5000))),
                { maxLength: 4 },
              ),
              config_path: fc.string(),
            }),
            fc.record({ node_id: fc.string(), command: fc.string() }),
          ),
        })
        .map((params) => JSON.stringify({ jsonrpc: "2.0", id: 10_000, method: "tools/call", params })),
    )
    const samples: string[] = fc.sample(hostile, { numRuns: 1000, seed: 42 })
    let statuses5xx = 0
    for (const body of samples) {
      const res = await fetch(mcp.url, { method: "POST", headers, body })
      if (res.status >= 500) statuses5xx++
      const text = await res.text()
      // Bad params are the caller's error (-32602), never the server's (-32603 Internal error).
      expect(text).not.toContain("-32603")
      if (res.status === 200 && text.includes('"result"') && body.includes('"tools/call"')) {
        // A tool answer to bad arguments is an error result, never a success.
        const parsed = JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? text) as { result?: { isError?: boolean } }
        const name = (JSON.parse(body) as { params: { name: string } }).params.name
        if (name !== "get_node") expect(parsed.result?.isError).toBe(true)
      }
    }
    expect(statuses5xx).toBe(0)
    expect((await client.listTools()).tools.length).toBe(9)
    await client.close()
  })

  test("a JSON message that is not JSON-RPC is answered as over stdio: its id, -32602 naming the field or -32600", async () => {
    const client = await httpClient(viewer)
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId as string
    const post = async (body: string, session: string | null = sessionId) => {
      const res = await fetch(mcp.url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${viewer}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2025-06-18",
          ...(session ? { "mcp-session-id": session } : {}),
        },
        body,
      })
      return {
        status: res.status,
        body: (await res.json()) as { id: unknown; error?: { code: number; message: string } },
      }
    }
    const params = await post('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":[]}')
    expect(params.status).toBe(400)
    expect(params.body).toMatchObject({
      id: 7,
      error: { code: -32602, message: expect.stringContaining("params must be an object") },
    })
    const version = await post('{"jsonrpc":"1.0","id":9,"method":"ping"}')
    expect(version.body).toMatchObject({ id: 9, error: { code: -32600 } })
    const objectId = await post('{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}')
    expect(objectId.body).toMatchObject({ id: null, error: { code: -32600 } })
    const batch = await post(
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"resources/read","params":5}]',
    )
    expect(batch.body).toMatchObject({ id: 2, error: { code: -32602 } })
    // Before a session too, and what is not JSON stays a parse error.
    const initialize = await post(JSON.stringify({ ...INITIALIZE, params: [] }), null)
    expect(initialize.body).toMatchObject({ id: 1, error: { code: -32602 } })
    expect((await post("this is not json")).body).toMatchObject({ id: null, error: { code: -32700 } })
    expect(await client.ping()).toEqual({})
    await client.close()
  })
})

describe("a deploy to an enrolled node that the control plane does not reach over SSH", () => {
  test("goes through its agent: the closure becomes desired, the agent activates it, the record says deployed", async () => {
    await using node = await createTestNode({ name: "pull-1", boot: gen1 })
    const join = (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as {
      token: string
    }
    await using _agent = startAgent(node, { nodeId: "pull-1", controlUrl: cp.url, joinToken: join.token })
    await waitFor(
      "pull-1 enrolled and reporting",
      async () => (await cp.api("/api/nodes/pull-1")).json(),
      (n) => (n as { currentPath?: string }).currentPath === gen1,
    )
    const client = await httpClient(cp.adminToken)
    const deployed = await callTool(client, "execute_deployment", { config_path: gen2Config, targets: ["pull-1"] })
    expect(deployed.s).toMatchObject({ status: "success", targets: ["pull-1"] })
    expect(deployed.s.results).toEqual([{ target: "pull-1", status: "deployed", error: null }])
    expect(await node.links()).toMatchObject({ profile: gen2, current: gen2 })
    // A name that is neither in [fleet.nodes] nor enrolled is refused before anything happens.
    const unknown = await callTool(client, "execute_deployment", { config_path: gen2Config, targets: ["nowhere-1"] })
    expect(unknown.isError).toBe(true)
    expect(unknown.s.message).toContain("unknown target")
    await client.close()
  })
})

describe("MCP over stdio", () => {
  const stdioClient = async (token: string, opts: { elicit?: boolean } = {}) => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MAIN, "mcp", "--stdio"],
      env: {
        ...(process.env as Record<string, string>),
        CHIMERA_URL: cp.url,
        CHIMERA_TOKEN: token,
        CHIMERA_CONFIG_FILE: "",
      },
      stderr: "pipe",
    })
    const client = new Client(
      { name: "chimera-test", version: "1" },
      { capabilities: opts.elicit ? { elicitation: { form: {} } } : {} },
    )
    await client.connect(transport)
    return client
  }

  test("`chimera mcp --stdio` deploys, checks congruence and rolls back with the CLI's credential", async () => {
    const client = await stdioClient(cp.adminToken, { elicit: true })
    approveAll(client)
    expect((await client.listTools()).tools.length).toBe(9)
    expect((await client.listResources()).resources.map((r) => r.uri)).toContain("node://health")
    // mcp-3 (no self-healing) still runs generation 1 by hand; deploy generation 2 to it again.
    const deployed = await callTool(client, "execute_deployment", { config_path: gen2Config, targets: ["mcp-3"] })
    expect(deployed.s).toMatchObject({ status: "success", targets: ["mcp-3"] })
    // Congruence of an enrolled node is what its agent last reported: wait for its next report.
    const congruent = await waitFor(
      "mcp-3 reported on generation 2",
      () => callTool(client, "check_congruence", { targets: ["mcp-3"], config_path: gen2Config }),
      (r) => r.s.results?.[0]?.status === "congruent",
    )
    expect(congruent.s.results?.[0]).toMatchObject({ target: "mcp-3", via: "agent", status: "congruent" })
    const rolled = await callTool(client, "rollback_deployment", { targets: ["mcp-3"] })
    expect(rolled.s.status).toBe("success")
    expect(await bed.nodes[2]!.node.links()).toMatchObject({ current: gen1 })
    const view = (await (await cp.api("/api/nodes/mcp-3")).json()) as { desiredPath: string }
    expect(view.desiredPath).toBe(gen1)
    await client.close()
  })

  test("piped into `chimera mcp --stdio`, every request is answered before the end of input ends it", async () => {
    const proc = stdioServer(viewer)
    // The last line has no newline: the end of input ends it.
    proc.stdin.write(
      [
        JSON.stringify(INITIALIZE),
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_nodes","arguments":{}}}',
        '{"jsonrpc":"2.0","id":3,"method":"ping"}',
      ].join("\n"),
    )
    await proc.stdin.end()
    const out = await new Response(proc.stdout).text()
    expect(await proc.exited).toBe(0)
    const ids = out
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { id: number }).id)
    expect(ids.sort()).toEqual([1, 2, 3])
  })

  test("every malformed line over stdio is answered, the JSON-RPC way, and the session goes on", async () => {
    const proc = stdioServer(viewer)
    const lines = [
      JSON.stringify(INITIALIZE),
      "this is not json",
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":[]}',
      '{"jsonrpc":"2.0","id":8,"method":"resources/read","params":5}',
      '{"jsonrpc":"1.0","id":9,"method":"ping"}',
      '{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}',
      '{"jsonrpc":"2.0","id":11,"method":"logging/setLevel","params":{"level":"loud"}}',
      '{"jsonrpc":"2.0","id":12,"method":"tools/list","params":{"cursor":5}}',
      '{"jsonrpc":"2.0","id":13,"method":"resources/read","params":{"uri":"::::"}}',
      '{"jsonrpc":"2.0","id":10,"method":"ping"}',
    ]
    proc.stdin.write(`${lines.join("\n")}\n`)
    await proc.stdin.flush()
    const answers: { id: unknown; error?: { code: number; message: string }; result?: unknown }[] = []
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader()
    let text = ""
    while (!answers.some((a) => a.id === 10)) {
      const { value, done } = await reader.read()
      if (done) break
      text += value
      for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n")) {
        answers.push(JSON.parse(text.slice(0, end)))
        text = text.slice(end + 1)
      }
    }
    proc.kill()
    const byId = (id: unknown) => answers.filter((a) => JSON.stringify(a.id) === JSON.stringify(id))
    expect(byId(1)[0]?.result).toBeDefined()
    expect(byId(7)[0]?.error).toMatchObject({
      code: -32602,
      message: expect.stringContaining("params must be an object"),
    })
    expect(byId(8)[0]?.error).toMatchObject({
      code: -32602,
      message: expect.stringContaining("params must be an object"),
    })
    expect(byId(9)[0]?.error?.code).toBe(-32600)
    expect(byId(11)[0]?.error).toMatchObject({ code: -32602, message: expect.stringContaining("params.level must be") })
    expect(byId(12)[0]?.error).toMatchObject({
      code: -32602,
      message: expect.stringContaining("params.cursor names no page"),
    })
    expect(byId(13)[0]?.error).toMatchObject({ code: -32602, message: expect.stringContaining("params.uri must be") })
    // No usable id: answered with a null id, one for the line that is not JSON and one for the object id.
    expect(
      byId(null)
        .map((a) => a.error?.code)
        .sort(),
    ).toEqual([-32700, -32600].sort())
    expect(byId(10)[0]?.result).toEqual({})
  })

  test("an operator over stdio may not build a Nix file on the control plane's host", async () => {
    const client = await stdioClient(operator)
    const health = await nodeHealth(client)
    expect(health.nodes.map((n) => n.id)).toEqual(expect.arrayContaining(names))
    const congruence = await callTool(client, "check_congruence", { targets: ["mcp-2"] })
    expect(congruence.s.results?.[0]).toMatchObject({ target: "mcp-2", via: "agent", status: "congruent" })
    const build = await callTool(client, "check_congruence", { targets: ["mcp-2"], config_path: gen2Config })
    expect(build.isError).toBe(true)
    expect(build.s.message).toContain("admin")
    await client.close()
    const res = await call(cp, operator, "GET", "/api/auth/me")
    expect(await res.json()).toMatchObject({ name: "otto", role: "operator" })
  })
})

describe("chimera deploy --via-control-plane", () => {
  /** `chimera deploy --via-control-plane ARGS` as the admin: its stdout, stderr and exit code. */
  const deployThrough = async (args: string[]) => {
    const r = Bun.spawn([process.execPath, MAIN, "deploy", "--via-control-plane", ...args], {
      env: {
        ...process.env,
        CHIMERA_URL: cp.url,
        CHIMERA_TOKEN: cp.adminToken,
        CHIMERA_CONFIG_FILE: "",
        NO_COLOR: "1",
      },
      stdout: "pipe",
      stderr: "pipe",
    })
    const [out, err, code] = await Promise.all([new Response(r.stdout).text(), new Response(r.stderr).text(), r.exited])
    return { out, err, code }
  }

  test("the control plane runs the deploy with its own key; the CLI follows it and prints the record", async () => {
    const { out, err, code } = await deployThrough(["--targets", "mcp-1", "--config", gen2Config, "--json"])
    expect({ code, err }).toEqual({ code: 0, err: "" })
    const record = JSON.parse(out) as { status: string; closure: string; targets: { target: string; status: string }[] }
    expect(record).toMatchObject({
      status: "succeeded",
      closure: gen2,
      targets: [{ target: "mcp-1", status: "deployed" }],
    })
    expect(await bed.nodes[0]!.node.links()).toMatchObject({ profile: gen2, current: gen2 })
    const view = (await (await cp.api("/api/nodes/mcp-1")).json()) as { desiredPath: string }
    expect(view.desiredPath).toBe(gen2)
  })

  test("without --json, every step of every target is a line of its own on stderr, once and in order", async () => {
    // Two targets at once, each going through every step (--force: they may be up to date already):
    // progress read from the latest state alone merged the targets into one line and skipped steps.
    const { out, err, code } = await deployThrough([
      "--targets",
      "mcp-2,mcp-3",
      "--config",
      gen2Config,
      "--force",
      "--health-cmd",
      "test -L /run/current-system",
    ])
    expect({ code, err }).toMatchObject({ code: 0 })
    expect(out).toContain("2 deployed")
    const lines = err.split("\n").filter((l) => l !== "")
    const steps = ["plan", "copy", "activate", "health", "confirm"]
    for (const target of ["mcp-2", "mcp-3"]) {
      const own = lines.filter((l) => l.startsWith(`${target}: `))
      // One line a step, each naming this target only, in the order the steps run.
      expect({ target, steps: own.map((l) => l.split(": ")[1]) }).toEqual({ target, steps })
      for (const line of own) expect(line).not.toMatch(target === "mcp-2" ? /mcp-3/ : /mcp-2/)
    }
    expect(lines).toHaveLength(2 * steps.length)
  })
})
