// check_congruence over MCP against `chimera watch --once` on the same 20 testbed nodes (real sshd on
// loopback addresses, real Nix), in the same run, rounds alternating which goes first. The MCP side is
// the whole path an AI client takes: the official SDK client over Streamable HTTP → `chimera mcp`'s
// server → the control plane's API → SSH to every node with the control plane's key. The peer is the
// CLI an operator would run instead (a fresh process each round: build, SSH to every node, compare).
// Both evaluate the same Nix file (cached in the store after the first build).
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { commandTargets } from "../../control/adapters/ssh/command-targets.ts"
import { serveMcpHttp } from "../../control/mcp/http.ts"
import { startInProcess } from "../../tests/support/control-plane.ts"
import { buildTestSystem } from "../../tests/support/nix-fixtures.ts"
import { createTestbed } from "../../tests/support/testbed.ts"
import { run } from "../../tests/support/tools.ts"
import { f1, log, median } from "./common.ts"

const ROOT = join(import.meta.dir, "../..")
const TEST_SYSTEM = join(ROOT, "nix/test-system.nix")

export interface McpCongruenceResults {
  nodes: number
  mcp: number[]
  watch: number[]
}

export async function mcpCongruenceBench(opts: { nodes: number; rounds: number }): Promise<McpCongruenceResults> {
  const work = await mkdtemp(join(tmpdir(), "chimera-bench-mcp-"))
  const gen1 = await buildTestSystem(1, { tag: "bench-mcp" })
  const config = join(work, "web.nix")
  await writeFile(config, `import ${TEST_SYSTEM} { generation = "1"; tag = "bench-mcp"; }\n`)
  await using bed = await createTestbed({ nodes: opts.nodes, boot: gen1, prefix: "bmcp" })
  const names = bed.nodes.map((n) => n.name)
  await using cp = await startInProcess({
    commandTargets: commandTargets(
      { nodes: bed.nodes.map((n) => ({ name: n.name, address: n.target, tags: [] })), targets: [] },
      { identity: bed.identityFile, knownHosts: bed.knownHostsFile },
    ),
  })
  const mcp = serveMcpHttp({ host: "127.0.0.1", port: 0, controlUrl: cp.url })
  const client = new Client({ name: "bench", version: "1" })
  await client.connect(
    new StreamableHTTPClientTransport(new URL(mcp.url), {
      requestInit: { headers: { authorization: `Bearer ${cp.adminToken}` } },
    }),
  )
  const viaMcp = async () => {
    const t = performance.now()
    const r = await client.callTool({ name: "check_congruence", arguments: { targets: names, config_path: config } })
    const ms = performance.now() - t
    const s = r.structuredContent as { results?: { status: string }[] }
    if (r.isError || s.results?.filter((x) => x.status === "congruent").length !== names.length)
      throw new Error(`check_congruence did not find ${names.length} congruent nodes: ${JSON.stringify(r.content)}`)
    return ms
  }
  const viaWatch = async () => {
    const argv = [process.execPath, join(ROOT, "control/main.ts"), "watch", "--once", "--targets", names.join(",")]
    argv.push("--config", config, "--identity", bed.identityFile, "--known-hosts", bed.knownHostsFile)
    const t = performance.now()
    const r = await run(argv, {
      env: {
        CHIMERA_URL: "",
        CHIMERA_TOKEN: "",
        CHIMERA_CONFIG_FILE: bed.configFile,
        CHIMERA_DATA_DIR: join(work, "cli"),
      },
    })
    const ms = performance.now() - t
    if (r.code !== 0) throw new Error(`chimera watch --once exited ${r.code}: ${r.stdout}${r.stderr}`)
    return ms
  }
  try {
    await viaMcp()
    await viaWatch()
    const results: McpCongruenceResults = { nodes: opts.nodes, mcp: [], watch: [] }
    for (let round = 0; round < opts.rounds; round++) {
      log(`  round ${round + 1}/${opts.rounds}`)
      if (round % 2 === 0) {
        results.mcp.push(await viaMcp())
        results.watch.push(await viaWatch())
      } else {
        results.watch.push(await viaWatch())
        results.mcp.push(await viaMcp())
      }
    }
    return results
  } finally {
    await client.close()
    await mcp.stop()
    await rm(work, { recursive: true, force: true })
  }
}

export function mcpCongruenceTable(r: McpCongruenceResults): string {
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${f1(median(xs))} | ${f1(Math.min(...xs))} | ${f1(Math.max(...xs))} |`
  return [
    `### check_congruence over MCP, against \`chimera watch --once\` (${r.nodes} testbed nodes over SSH)`,
    "",
    "| path | rounds | median ms | min ms | max ms |",
    "|---|---:|---:|---:|---:|",
    row("MCP client → chimera mcp → API → SSH (control plane's key)", r.mcp),
    row("peer: `chimera watch --once` (a new CLI process: build, SSH, compare)", r.watch),
    "",
    `Over MCP the check takes **${(median(r.mcp) / median(r.watch)).toFixed(2)}×** the time of \`chimera watch --once\` at the median: the control plane keeps its SSH connections pooled and its process warm, where the CLI starts, evaluates and connects anew each time. Enrolled nodes skip SSH altogether (their agents' reports answer).`,
  ].join("\n")
}
