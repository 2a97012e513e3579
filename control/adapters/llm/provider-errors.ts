// What a provider's failure means to the chat: our own deadline or a cancel (the abort's reason,
// already an LlmError), the SDK's connection timeout (timeout), or anything else: refused, failing or
// unreachable (unavailable). The message names the provider and its URL, never the key.
import { APIError as AnthropicApiError, APIConnectionTimeoutError as AnthropicTimeout } from "@anthropic-ai/sdk"
import { APIError as OpenAiApiError, APIConnectionTimeoutError as OpenAiTimeout } from "openai"
import { LlmError } from "../../ai/llm-port.ts"
import type { ProviderSettings } from "./provider.ts"

export function providerFailure(name: string, s: ProviderSettings, signal: AbortSignal, error: unknown): LlmError {
  if (signal.aborted && signal.reason instanceof LlmError) return signal.reason
  if (error instanceof LlmError) return error
  const where = `${name} at ${s.baseUrl || "its default URL"}`
  if (error instanceof AnthropicTimeout || error instanceof OpenAiTimeout)
    return new LlmError("timeout", `${where} did not answer within ${s.timeoutMs / 1000} s`)
  if ((error instanceof AnthropicApiError || error instanceof OpenAiApiError) && typeof error.status === "number") {
    const said = error.message.replace(/^\d{3}\s*/, "").slice(0, 300)
    return new LlmError("unavailable", `${where} answered ${error.status}: ${said}`)
  }
  const reason = error instanceof Error ? error.message : String(error)
  return new LlmError("unavailable", `${where} could not be used: ${reason.slice(0, 300)}`)
}
