// OpenAI's Chat Completions API through the official SDK (openai), streamed with usage included.
// The same wire format is what Ollama, vLLM and llama.cpp's server speak, so `base_url` points it at
// any of them. Text arrives as delta.content; a tool call's name and id come in its first chunk and
// its JSON arguments in pieces by `index`; usage comes in a last chunk with no choices.
import OpenAI from "openai"
import { type LlmEvent, type LlmMessage, type LlmPort, type LlmRequest, parseToolArgs } from "../../ai/llm-port.ts"
import { fetchWithoutRedirects } from "./no-redirect.ts"
import type { ProviderSettings } from "./provider.ts"
import { providerFailure, streamCut } from "./provider-errors.ts"

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam

export function toOpenAiMessages(system: string, messages: LlmMessage[]): Message[] {
  const out: Message[] = [{ role: "system", content: system }]
  for (const m of messages) {
    if (m.role === "user") out.push({ role: "user", content: m.content })
    else if (m.role === "tool") out.push({ role: "tool", tool_call_id: m.toolCallId, content: m.content })
    else
      out.push({
        role: "assistant",
        content: m.content === "" && m.toolCalls.length > 0 ? null : m.content,
        ...(m.toolCalls.length > 0
          ? {
              tool_calls: m.toolCalls.map((c) => ({
                id: c.id,
                type: "function" as const,
                function: { name: c.name, arguments: JSON.stringify(c.args) },
              })),
            }
          : {}),
      })
  }
  return out
}

export function openAiProvider(s: ProviderSettings): LlmPort {
  // A local server (Ollama, llama.cpp) takes no key; the SDK insists on one, and sends it as given.
  const client = new OpenAI({
    apiKey: s.apiKey || "none",
    baseURL: s.baseUrl || "https://api.openai.com/v1",
    maxRetries: 0,
    timeout: s.timeoutMs,
    fetch: fetchWithoutRedirects,
  })
  return {
    provider: "openai",
    async *stream(r: LlmRequest): AsyncIterable<LlmEvent> {
      const calls = new Map<number, { id: string; name: string; json: string }>()
      try {
        const chunks = await client.chat.completions.create(
          {
            model: r.model,
            // max_tokens, not max_completion_tokens: what Ollama, vLLM and llama.cpp's server read.
            max_tokens: r.maxTokens,
            messages: toOpenAiMessages(r.system, r.messages),
            ...(r.tools.length > 0
              ? {
                  tools: r.tools.map((t) => ({
                    type: "function" as const,
                    function: { name: t.name, description: t.description, parameters: t.parameters },
                  })),
                }
              : {}),
            stream: true,
            stream_options: { include_usage: true },
          },
          { signal: r.signal },
        )
        let finished = false
        for await (const chunk of chunks) {
          // The usage chunk has no choices: `[]` from OpenAI, null or no key at all from vLLM and some proxies.
          const choice = (chunk.choices as typeof chunk.choices | null | undefined)?.[0]
          if (choice?.finish_reason) finished = true
          const delta = choice?.delta
          if (delta?.content) yield { type: "text", text: delta.content }
          for (const t of delta?.tool_calls ?? []) {
            const known = calls.get(t.index) ?? { id: "", name: "", json: "" }
            if (t.id) known.id = t.id
            // The name comes whole, in the call's first delta; some servers repeat it in every delta. As the
            // SDK's own accumulator (ChatCompletionStream) does, it is taken, not appended.
            if (t.function?.name) known.name = t.function.name
            if (t.function?.arguments) known.json += t.function.arguments
            calls.set(t.index, known)
          }
          if (chunk.usage)
            yield {
              type: "usage",
              inputTokens: chunk.usage.prompt_tokens,
              outputTokens: chunk.usage.completion_tokens,
            }
        }
        // A stream that closes before any choice said why it finished was cut (a proxy or the server gave
        // up): what came is a fragment, not the answer, and a call's arguments may be half there.
        if (!finished && !r.signal.aborted) throw streamCut("no finish_reason")
        for (const [index, c] of [...calls.entries()].sort((a, b) => a[0] - b[0]))
          yield { type: "tool_call", call: parseToolArgs(c.id || `call_${index}`, c.name, c.json) }
      } catch (error) {
        throw providerFailure("OpenAI-compatible API", s, r.signal, error)
      }
    },
  }
}
