// The AI chat loop's own cost per turn, with the model taken out: a control plane whose chat talks to
// the scripted model of tests/support/llm-server.ts (answers at once, both wire formats), a node bound
// to the chat. Per turn kind, over many turns: the median time of POST /api/v1/ai/chat/:id/message,
// the median time of the same model call made straight through the provider's SDK (the peer: what the
// turn would cost with no loop around it), and the tokens sent per model call (the request as the
// provider received it, at four characters a token; tools and system prompt are most of it).
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createProvider } from "../../control/adapters/llm/provider.ts"
import type { LlmMessage } from "../../control/ai/llm-port.ts"
import { toolSpecs } from "../../control/ai/tools.ts"
import { aiSettingsFor, chatCall } from "../../tests/support/ai-chat.ts"
import { enrollNode } from "../../tests/support/auth.ts"
import { startInProcess } from "../../tests/support/control-plane.ts"
import { type Provider, startLlmServer } from "../../tests/support/llm-server.ts"
import { f1, log, median } from "./common.ts"

export const AI_HEADING = "### AI chat: the loop's own cost per turn (scripted model, no model time)"

export interface AiRow {
  provider: Provider
  kind: string
  turns: number
  turnMs: number
  sdkMs: number
  callsPerTurn: number
  tokensPerCall: number
  fixedTokens: number
}

const tokens = (body: unknown) => Math.ceil(JSON.stringify(body).length / 4)

async function providerRows(provider: Provider, turns: number): Promise<AiRow[]> {
  const llm = await startLlmServer(provider)
  const dataDir = await mkdtemp(join(tmpdir(), "chimera-bench-ai-"))
  const settings = aiSettingsFor(llm)
  const cp = await startInProcess({ dataDir, ai: settings })
  try {
    await enrollNode(cp, "bench-1")
    const t = cp.adminToken
    const newChat = async () =>
      ((await (await chatCall(cp.url, t, "POST", "/chat", { nodeId: "bench-1" })).json()) as { chatId: number }).chatId
    const sdk = createProvider(settings)
    const rows: AiRow[] = []
    const measure = async (kind: string, chatId: number, script: () => void, calls: number) => {
      const times: number[] = []
      const sdkTimes: number[] = []
      const sizes: number[] = []
      for (let i = 0; i < turns; i++) {
        script()
        const from = llm.requests.length
        const start = performance.now()
        const res = await chatCall(cp.url, t, "POST", `/chat/${chatId}/message`, { message: `question ${i}` })
        if (res.status !== 200) throw new Error(`turn ${i}: ${res.status} ${await res.text()}`)
        await res.json()
        times.push(performance.now() - start)
        for (const r of llm.requests.slice(from)) sizes.push(tokens(r.body))
        // The peer: the turn's last model call again, straight through the SDK, with the same conversation.
        const last = llm.requests.at(-1)
        if (!last) throw new Error("no model call")
        llm.script({ text: "ok" })
        const messages: LlmMessage[] = [{ role: "user", content: `question ${i}` }]
        const s = performance.now()
        for await (const _ of sdk.stream({
          model: settings.model,
          system: last.system,
          messages,
          tools: toolSpecs(),
          maxTokens: 4096,
          signal: new AbortController().signal,
        })) {
        }
        sdkTimes.push((performance.now() - s) * calls)
      }
      rows.push({
        provider,
        kind,
        turns,
        turnMs: median(times),
        sdkMs: median(sdkTimes),
        callsPerTurn: calls,
        tokensPerCall: median(sizes),
        fixedTokens: Math.ceil((JSON.stringify(toolSpecs()).length + (llm.requests.at(-1)?.system.length ?? 0)) / 4),
      })
    }
    await measure("text answer", await newChat(), () => llm.script({ text: "All nodes are congruent." }), 1)
    await measure(
      "one read tool, then answer",
      await newChat(),
      () =>
        llm.script({ toolCalls: [{ name: "get_node", args: { node_id: "bench-1" } }] }, { text: "bench-1 is fine." }),
      2,
    )
    return rows
  } finally {
    await cp.stop()
    await llm.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

export async function aiBench(opts: { turns: number }): Promise<AiRow[]> {
  const rows: AiRow[] = []
  for (const provider of ["anthropic", "openai"] as Provider[]) {
    log(`ai: ${opts.turns} turns of each kind over ${provider}…`)
    rows.push(...(await providerRows(provider, opts.turns)))
  }
  return rows
}

export function aiTable(rows: AiRow[], measured: string): string {
  const lines = [
    AI_HEADING,
    "",
    `${measured}. Turns run one after another in one chat each, so the conversation grows with them; the model answers at once.`,
    "",
    "| provider | turn | turns | turn median (ms) | SDK calls alone (ms) | loop overhead (ms) | model calls | tokens sent per call (median) | of which tools + system prompt |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.provider} | ${r.kind} | ${r.turns} | ${f1(r.turnMs)} | ${f1(r.sdkMs)} | ${f1(Math.max(0, r.turnMs - r.sdkMs))} | ${r.callsPerTurn} | ${r.tokensPerCall} | ${r.fixedTokens} |`,
    ),
  ]
  return lines.join("\n")
}
