// The configured model provider: `[ai]` resolved once at start (the key read from api_key_file or
// CHIMERA_AI_API_KEY when not set inline) and the matching adapter. No provider: null, and the chat
// routes answer 503 with how to configure one. The key lives only in the SDK client.
import { readFileSync } from "node:fs"
import type { LlmPort } from "../../ai/llm-port.ts"
import { ConfigError } from "../../config.ts"
import { isEndpointUrl } from "../../config-channels.ts"
import { ChimeraConfig } from "../../config-schema.ts"
import { anthropicProvider } from "./anthropic.ts"
import { openAiProvider } from "./openai.ts"

export interface ProviderSettings {
  provider: "anthropic" | "openai"
  model: string
  baseUrl: string
  apiKey: string
  timeoutMs: number
}

export interface AiSettings extends ProviderSettings {
  /** `[ai] models`: what a chat may name besides `model` (control/ai/model-choice.ts). */
  models: string[]
  questionTtlSeconds: number
  maxContextTokens: number
  /** `[ai] turn_lease_seconds`: how long a turn's lease holds without renewal (control/ai/turn-lease.ts). */
  turnLeaseSeconds: number
}

const DEFAULT_MODEL = { anthropic: "claude-sonnet-4-5", openai: "gpt-4o" } as const

/** `[ai]` as the control plane uses it, or null when no provider is configured. */
export function aiSettings(config: Pick<ChimeraConfig, "ai">): AiSettings | null {
  const ai = config.ai
  if (ai.provider === "") {
    // A setting that would change nothing is refused, not ignored: the operator meant a provider.
    const defaults = ChimeraConfig.parse({}).ai as Record<string, unknown>
    const set = Object.entries(ai).filter(
      ([k, v]) => k !== "provider" && JSON.stringify(v) !== JSON.stringify(defaults[k]),
    )
    if (set.length > 0)
      throw new ConfigError(
        `config: ${set.map(([k]) => `ai.${k}`).join(", ")} set but ai.provider is not: set provider = "anthropic" or "openai", or remove them`,
      )
    return null
  }
  if (ai.api_key !== "" && ai.api_key_file !== "")
    throw new ConfigError("config: ai.api_key and ai.api_key_file are both set; keep one")
  let apiKey = ai.api_key
  if (ai.api_key_file !== "") {
    try {
      apiKey = readFileSync(ai.api_key_file, "utf8").trim()
    } catch (error) {
      throw new ConfigError(
        `config: ai.api_key_file: cannot read ${ai.api_key_file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`,
      )
    }
  }
  if (apiKey === "" && ai.provider === "anthropic")
    throw new ConfigError(
      "config: ai.provider is anthropic but no key is set: set ai.api_key_file, ai.api_key or CHIMERA_AI_API_KEY",
    )
  // The key travels in a header on every call: over plain http beyond this host anyone on the path
  // reads it. The notification endpoints follow the same rule. A keyless local server may use http.
  if (apiKey !== "" && ai.base_url !== "" && !isEndpointUrl(ai.base_url))
    throw new ConfigError(
      `config: ai.base_url: ${new URL(ai.base_url).origin} is plain http beyond this host, and the API key would cross the network in clear: use https (http only to a loopback address), or no key for a server that takes none`,
    )
  return {
    provider: ai.provider,
    model: ai.model || DEFAULT_MODEL[ai.provider],
    models: ai.models,
    baseUrl: ai.base_url.replace(/\/+$/, ""),
    apiKey,
    timeoutMs: ai.timeout_seconds * 1000,
    questionTtlSeconds: ai.question_ttl_seconds,
    maxContextTokens: ai.max_context_tokens,
    turnLeaseSeconds: ai.turn_lease_seconds,
  }
}

export function createProvider(s: ProviderSettings): LlmPort {
  return s.provider === "anthropic" ? anthropicProvider(s) : openAiProvider(s)
}
