// Runs a real agent inside a test node, from source (`bun agent/main.ts`) or as the compiled
// single file, and keeps its log so a failing test can show what the agent said.
import { join } from "node:path"
import type { Subprocess } from "bun"
import type { TestNode } from "./test-node.ts"

const AGENT_MAIN = join(import.meta.dir, "../../agent/main.ts")

export interface AgentProcess extends AsyncDisposable {
  proc: Subprocess
  stateDir: string
  /** Everything the agent wrote to stderr so far. */
  log(): string
  stop(): Promise<number>
}

export interface AgentProcessOptions {
  nodeId: string
  controlUrl: string
  joinToken?: string
  /** Path of a compiled agent; default: run agent/main.ts with this Bun. */
  binary?: string
  heartbeatSeconds?: number
  extraArgs?: string[]
}

export function startAgent(node: TestNode, opts: AgentProcessOptions): AgentProcess {
  const stateDir = join(node.dir, "agent-state")
  const cmd = opts.binary ? [opts.binary] : [process.execPath, AGENT_MAIN]
  const args = [
    "--node-id",
    opts.nodeId,
    "--control-url",
    opts.controlUrl,
    "--state-dir",
    stateDir,
    "--heartbeat",
    String(opts.heartbeatSeconds ?? 1),
    "--log-level",
    "debug",
    ...(opts.joinToken ? ["--join-token", opts.joinToken] : []),
    ...(opts.extraArgs ?? []),
  ]
  const proc = node.spawn([...cmd, ...args], { stdout: "ignore", stderr: "pipe" })
  let stderr = ""
  const drain = (async () => {
    if (!proc.stderr || typeof proc.stderr === "number") return
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk
  })()
  const stop = async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM")
    const code = await proc.exited
    await drain
    return code
  }
  return { proc, stateDir, log: () => stderr, stop, [Symbol.asyncDispose]: async () => void (await stop()) }
}
