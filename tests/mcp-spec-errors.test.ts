// The MCP server's errors as the official SDK's Client reads them, over Streamable HTTP and over the
// real `chimera mcp --stdio`: a resource URI that names no resource is -32002 "Resource not found"
// (the specification's code) naming what the server does serve, a tool the caller's role is not
// offered is a JSON-RPC -32602 naming its tools (the specification's protocol error for an unknown
// tool), a list cursor is invalid params (no list has a second page), and no message carries the
// SDK's "MCP error -32602: " twice.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { join } from "node:path"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { LATEST_PROTOCOL_VERSION, McpError } from "@modelcontextprotocol/sdk/types.js"
import { serveMcpHttp } from "../control/mcp/http.ts"
import { addUser, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

let cp: TestControlPlane
let mcp: ReturnType<typeof serveMcpHttp>
let viewer: string

beforeAll(async () => {
  cp = await startInProcess()
  mcp = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url })
  await addUser(cp, "vera", "viewer")
  viewer = await login(cp, "vera")
})

afterAll(async () => {
  await mcp?.stop()
  await cp?.stop()
})

async function overHttp(token: string) {
  const client = new Client({ name: "spec-errors", version: "1" })
  const transport = new StreamableHTTPClientTransport(new URL(mcp.url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await client.connect(transport)
  return { client, version: transport.protocolVersion }
}

async function overStdio(token: string) {
  const client = new Client({ name: "spec-errors", version: "1" })
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [MAIN, "mcp", "--stdio"],
      env: { PATH: process.env.PATH ?? "", CHIMERA_URL: cp.url, CHIMERA_TOKEN: token, CHIMERA_CONFIG_FILE: "" },
      stderr: "ignore",
    }),
  )
  return { client, version: undefined }
}

/** The McpError a call is refused with (the test fails if it is answered instead). */
async function refusal(call: Promise<unknown>): Promise<McpError> {
  const error = await call.then(
    (answer) => new Error(`answered instead of refused: ${JSON.stringify(answer).slice(0, 300)}`),
    (e: unknown) => e,
  )
  if (!(error instanceof McpError)) throw error
  return error
}

const PREFIX_TWICE = /MCP error -?\d+: MCP error/

describe.each([
  ["Streamable HTTP", overHttp],
  ["stdio", overStdio],
])("over %s", (_, connect) => {
  test("a URI that names no resource is -32002 naming the resources there are, its prefix said once", async () => {
    const { client, version } = await connect(cp.adminToken)
    if (version !== undefined) expect(version).toBe(LATEST_PROTOCOL_VERSION)
    for (const uri of ["bogus://x", "node://"]) {
      const e = await refusal(client.readResource({ uri }))
      expect(e.code).toBe(-32002)
      expect(e.message).not.toMatch(PREFIX_TWICE)
      expect(e.message).toContain(`Resource not found: ${uri}`)
      expect(e.message).toContain("node://health, node://{id}, deployment://{session_id}")
    }
    // A node that does not exist was -32002 already; still once.
    const missing = await refusal(client.readResource({ uri: "node://no-such-node" }))
    expect(missing.code).toBe(-32002)
    expect(missing.message).not.toMatch(PREFIX_TWICE)
    // The lists come in one page, so a cursor (a client's own, or one kept from another server) is invalid params.
    expect((await client.listResources()).nextCursor).toBeUndefined()
    const cursor = await refusal(client.listResources({ cursor: "page-2" }))
    expect(cursor.code).toBe(-32602)
    expect(cursor.message).toEndWith(
      "resources/list: params.cursor names no page: this server's lists come whole, in one page without a nextCursor",
    )
    // The session goes on.
    expect(await client.ping()).toEqual({})
    await client.close()
  })

  test("a tool the role is not offered is a JSON-RPC -32602 that names the role and its tools", async () => {
    const { client } = await connect(viewer)
    const listed = (await client.listTools()).tools.map((t) => t.name)
    const e = await refusal(client.callTool({ name: "set_desired_closure", arguments: {} }))
    expect(e.code).toBe(-32602)
    expect(e.message).not.toMatch(PREFIX_TWICE)
    expect(e.message).toContain('"set_desired_closure" is not a tool of this server for role viewer')
    expect(e.message).toContain(`its tools are ${listed.join(", ")}`)
    const unknown = await refusal(client.callTool({ name: "no_such_tool", arguments: {} }))
    expect(unknown.code).toBe(-32602)
    // A tool it is offered still answers, bad arguments as a tool result the model can read.
    const bad = await client.callTool({ name: "list_nodes", arguments: { x: 1 } })
    expect(bad.isError).toBe(true)
    expect(JSON.stringify(bad.content)).toContain('Unrecognized key: \\"x\\"')
    expect((await client.callTool({ name: "list_nodes", arguments: {} })).isError).toBeUndefined()
    await client.close()
  })
})
