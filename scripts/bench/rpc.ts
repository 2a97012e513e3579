// Memory of a long headless session: `chimera code --mode rpc` (a child process, driven over its
// stdin/stdout as an editor drives it) runs `turns` prompts against a control plane whose chat talks to
// the scripted model (tests/support/llm-server.ts, the providers' real streaming wire format), with a
// small `[ai] max_context_tokens` so the control plane compacts the conversation by itself as it grows,
// and an explicit `compact` every 50 turns. The RPC process's RSS is read from /proc at checkpoints;
// the control plane and the scripted model share this process, whose RSS is shown beside it.
import { readFileSync } from "node:fs"
import { startChatPlane } from "../../tests/support/chat-plane.ts"
import { startRpc } from "../../tests/support/rpc-process.ts"
import { f1, log, median } from "./common.ts"

export interface RpcBenchResults {
  turns: number
  /** [turns done, RPC process RSS MB, this process RSS MB] */
  checkpoints: [number, number, number][]
  turnMs: number[]
  compactions: number
  messagesAtEnd: number
}

const rssMb = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m)
  return line ? Number(line[1]) / 1024 : Number.NaN
}

// About 600 characters an answer: a table and a paragraph, as an operator's question gets.
const ANSWER = [
  "## web-1",
  "",
  "| Node | Status | Drift |",
  "|---|---|---:|",
  "| web-1 | healthy | 0 |",
  "",
  "The profile, the running system and the booted system are the same closure; nothing to heal. ".repeat(5),
].join("\n")

export async function rpcBench(opts: { turns: number }): Promise<RpcBenchResults> {
  await using plane = await startChatPlane({ maxContextTokens: 4000 })
  let compactions = 0
  const reply = (r: { system: string }) => {
    if (r.system.startsWith("You compact")) {
      compactions++
      return { text: "Summary: the user asked about web-1 many times; it stayed healthy." }
    }
    return { text: ANSWER }
  }
  for (let i = 0; i < opts.turns * 3; i++) plane.llm.script(reply)
  await using rpc = startRpc(plane.env)
  const checkpoints: [number, number, number][] = []
  const mark = (done: number) => checkpoints.push([done, rssMb(rpc.proc.pid), process.memoryUsage().rss / 1048576])
  // The first turn warms up the process (modules loaded, connections open); memory counts from there.
  const turnMs: number[] = []
  for (let i = 1; i <= opts.turns; i++) {
    const t0 = performance.now()
    rpc.send({ type: "prompt", id: i, message: `Turn ${i}: how is web-1 doing now?` })
    const { line } = await rpc.response(i, 120_000)
    if (line.success !== true) throw new Error(`turn ${i} failed: ${JSON.stringify(line)}`)
    turnMs.push(performance.now() - t0)
    rpc.forget()
    if (i % 50 === 0) {
      rpc.send({ type: "compact", id: `c${i}` })
      await rpc.response(`c${i}`, 120_000)
      rpc.forget()
    }
    if (i === 1 || i % 50 === 0) {
      Bun.gc(true)
      mark(i)
      log(`rpc bench: ${i} turns, RPC process ${f1(checkpoints.at(-1)?.[1] ?? 0)} MB`)
    }
  }
  rpc.send({ type: "get_state", id: "end" })
  const { seen } = await rpc.response("end")
  const state = seen.find((l) => l.type === "state") as { messages: unknown[] } | undefined
  const code = await rpc.end()
  if (code !== 0) throw new Error(`chimera code exited ${code}: ${rpc.stderr()}`)
  return { turns: opts.turns, checkpoints, turnMs, compactions, messagesAtEnd: state?.messages.length ?? -1 }
}

export const RPC_HEADING = "### A 200-turn JSON-lines RPC session (`chimera code --mode rpc`) with compaction"

export function rpcTable(r: RpcBenchResults, measured: string): string {
  const first = r.checkpoints[0]
  const warm = r.checkpoints[1]
  const last = r.checkpoints.at(-1)
  const growth = (a?: [number, number, number], b?: [number, number, number]) => (a && b ? b[1] - a[1] : Number.NaN)
  return [
    RPC_HEADING,
    "",
    `${measured}. ${r.turns} prompts over one session against the scripted model (Anthropic wire format), \`[ai] max_context_tokens = 4000\` so the control plane compacts by itself, plus \`compact\` every 50 turns: ${r.compactions} compactions in all, ${r.messagesAtEnd} messages left at the end.`,
    "",
    "| after turn | RPC process RSS (MB) | control plane + scripted model RSS (MB, one process) |",
    "|---:|---:|---:|",
    ...r.checkpoints.map(([turn, rpc, cp]) => `| ${turn} | ${f1(rpc)} | ${f1(cp)} |`),
    "",
    `A turn (prompt sent → its response read, through the control plane and the model's stream) takes ${f1(median(r.turnMs))} ms at the median, ${f1(Math.max(...r.turnMs))} ms at most. The RPC process grows by ${f1(growth(first, warm))} MB over the first ${warm?.[0]} turns (code paths compiled, buffers and connections warm), then by ${f1(growth(warm, last))} MB over the next ${(last?.[0] ?? 0) - (warm?.[0] ?? 0)} (its garbage is collected when its runtime decides, not forced here): it keeps no history of its own (the conversation lives on the control plane, compacted there), so nothing in it grows with the conversation.`,
  ].join("\n")
}
