// The Anthropic Messages API through the official SDK (@anthropic-ai/sdk), streamed: text arrives as
// text_delta events, a tool call as a tool_use block whose JSON input arrives in input_json_delta
// pieces, usage in message_start (input) and message_delta (output). The conversation is folded into
// the API's alternating turns: tool results travel as tool_result blocks in the next user turn.
import Anthropic from "@anthropic-ai/sdk"
import { type LlmEvent, type LlmMessage, type LlmPort, type LlmRequest, parseToolArgs } from "../../ai/llm-port.ts"
import { fetchWithoutRedirects } from "./no-redirect.ts"
import type { ProviderSettings } from "./provider.ts"
import { providerFailure, streamCut } from "./provider-errors.ts"

type Block = Anthropic.TextBlockParam | Anthropic.ToolUseBlockParam | Anthropic.ToolResultBlockParam

export function toAnthropicMessages(messages: LlmMessage[]): Anthropic.MessageParam[] {
  const out: { role: "user" | "assistant"; content: Block[] }[] = []
  const push = (role: "user" | "assistant", blocks: Block[]) => {
    if (blocks.length === 0) return
    const last = out.at(-1)
    if (last?.role === role) last.content.push(...blocks)
    else out.push({ role, content: blocks })
  }
  for (const m of messages) {
    if (m.role === "user") push("user", [{ type: "text", text: m.content }])
    else if (m.role === "tool")
      push("user", [{ type: "tool_result", tool_use_id: m.toolCallId, content: m.content || "(no output)" }])
    else
      push("assistant", [
        ...(m.content.trim() === "" ? [] : [{ type: "text" as const, text: m.content }]),
        ...m.toolCalls.map((c) => ({ type: "tool_use" as const, id: c.id, name: c.name, input: c.args })),
      ])
  }
  // The API answers only a conversation that starts with the user.
  if (out[0]?.role !== "user") out.unshift({ role: "user", content: [{ type: "text", text: "(conversation start)" }] })
  return out
}

export function anthropicProvider(s: ProviderSettings): LlmPort {
  const client = new Anthropic({
    apiKey: s.apiKey,
    baseURL: s.baseUrl || "https://api.anthropic.com",
    maxRetries: 0,
    timeout: s.timeoutMs,
    fetch: fetchWithoutRedirects,
  })
  return {
    provider: "anthropic",
    async *stream(r: LlmRequest): AsyncIterable<LlmEvent> {
      const tools: Anthropic.Tool[] = r.tools.map((t) => ({
        name: t.name,
        description: t.description,
        input_schema: t.parameters as Anthropic.Tool.InputSchema,
      }))
      const pending = new Map<number, { id: string; name: string; json: string }>()
      try {
        const events = await client.messages.create(
          {
            model: r.model,
            max_tokens: r.maxTokens,
            system: r.system,
            messages: toAnthropicMessages(r.messages),
            ...(tools.length > 0 ? { tools } : {}),
            stream: true,
          },
          { signal: r.signal },
        )
        let input = 0
        let stopped = false
        for await (const e of events) {
          if (e.type === "message_stop") stopped = true
          else if (e.type === "message_start") input = e.message.usage.input_tokens
          else if (e.type === "content_block_start" && e.content_block.type === "tool_use")
            pending.set(e.index, { id: e.content_block.id, name: e.content_block.name, json: "" })
          else if (e.type === "content_block_delta") {
            if (e.delta.type === "text_delta") yield { type: "text", text: e.delta.text }
            else if (e.delta.type === "input_json_delta") {
              const p = pending.get(e.index)
              if (p) p.json += e.delta.partial_json
            }
          } else if (e.type === "content_block_stop") {
            const p = pending.get(e.index)
            if (p) {
              pending.delete(e.index)
              yield { type: "tool_call", call: parseToolArgs(p.id, p.name, p.json) }
            }
          } else if (e.type === "message_delta")
            yield { type: "usage", inputTokens: input, outputTokens: e.usage.output_tokens }
        }
        // Every answer ends with message_stop: a stream that closes before it was cut (a proxy or the
        // network gave up), and what came is a fragment, not the answer.
        if (!stopped && !r.signal.aborted) throw streamCut("no message_stop")
      } catch (error) {
        throw providerFailure("Anthropic", s, r.signal, error)
      }
    },
  }
}
