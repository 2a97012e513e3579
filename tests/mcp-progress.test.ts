// Progress notifications as the official SDK's Client uses them: a client that gave a progressToken
// and restarts its timeout on each notification (resetTimeoutOnProgress) waits out a tool call longer
// than its timeout, here a deploy whose Nix build takes 22 s, against a client timeout of 12 s. The
// build runs inside the API request the tool waits on, so nothing was said while it ran, and the
// client gave up with "Request timed out" and cancelled the call.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { Progress } from "@modelcontextprotocol/sdk/types.js"
import { serveMcpHttp } from "../control/mcp/http.ts"
import { enrollNode } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"

let work: string
let cp: TestControlPlane
let mcp: ReturnType<typeof serveMcpHttp>

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-mcp-progress-"))
  cp = await startInProcess()
  mcp = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url })
  await enrollNode(cp, "slow-1")
})

afterAll(async () => {
  await mcp?.stop()
  await cp?.stop()
  await rm(work, { recursive: true, force: true })
})

test("a deploy whose build outlasts the client's timeout keeps it waiting with progress, and answers", async () => {
  // A build of 22 s that fails: the answer is the build's failure, whatever the node would have done.
  const config = join(work, "slow.nix")
  await writeFile(
    config,
    `derivation { name = "chimera-slow-build"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "/bin/sleep 22; echo the slow build gives up >&2; exit 1" ]; nonce = "${Date.now()}"; }\n`,
  )
  const client = new Client({ name: "progress", version: "1" })
  await client.connect(
    new StreamableHTTPClientTransport(new URL(mcp.url), {
      requestInit: { headers: { authorization: `Bearer ${cp.adminToken}` } },
    }),
  )
  const heard: { at: number; progress: Progress }[] = []
  const started = Date.now()
  const answer = await client.callTool(
    { name: "execute_deployment", arguments: { config_path: config, targets: ["slow-1"] } },
    undefined,
    {
      timeout: 12_000,
      resetTimeoutOnProgress: true,
      onprogress: (progress) => heard.push({ at: Date.now() - started, progress }),
    },
  )
  expect(Date.now() - started).toBeGreaterThan(20_000)
  expect(answer.isError).toBe(true)
  expect(JSON.stringify(answer.content)).toContain("the slow build gives up")
  // Said at once and then every 10 s, each with a greater count, never 12 s apart.
  expect(heard.length).toBeGreaterThanOrEqual(3)
  expect(heard[0]?.progress.message).toBe("Deploy a configuration: waiting for the control plane's answer")
  for (const [i, h] of heard.entries()) {
    const before = heard[i - 1]
    if (!before) continue
    expect(h.progress.progress).toBeGreaterThan(before.progress.progress)
    expect(h.at - before.at).toBeLessThan(12_000)
  }
  await client.close()
}, 60_000)
