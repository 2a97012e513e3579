// A provider that cannot be reached, as both SDKs really fail against a closed loopback port: the
// chat's error says there was no connection and why, whichever SDK it came from.
import { describe, expect, test } from "bun:test"
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import type { ProviderSettings } from "./provider.ts"
import { providerFailure } from "./provider-errors.ts"

/** A loopback port nobody listens on: taken, then let go. */
function _closedPort(): number {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() })
  const port = server.port ?? 0
  server.stop(true)
  return port
}

const baseUrl = `http://127.0.0.1:${_closedPort()}`
const settings: ProviderSettings = {
  provider: "openai",
  model: "llama3",
  baseUrl,
  apiKey: "sk-never-shown",
  timeoutMs: 10_000,
}

async function failure(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call()
  } catch (error) {
    return error
  }
  throw new Error("the call succeeded")
}

describe("providerFailure for a provider nobody listens for", () => {
  test("OpenAI-compatible: no connection, with the system's reason and what to check", async () => {
    const client = new OpenAI({ apiKey: settings.apiKey, baseURL: `${baseUrl}/v1`, maxRetries: 0 })
    const error = await failure(() =>
      client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }),
    )
    const said = providerFailure("OpenAI-compatible API", settings, new AbortController().signal, error)
    expect(said.kind).toBe("unavailable")
    expect(said.message).toBe(
      `OpenAI-compatible API at ${baseUrl} could not be used: no connection (ECONNREFUSED); check that the model server runs there and that this host can reach it ([ai] base_url)`,
    )
  })

  test("Anthropic: the same sentence", async () => {
    const client = new Anthropic({ apiKey: settings.apiKey, baseURL: baseUrl, maxRetries: 0 })
    const error = await failure(() =>
      client.messages.create({ model: "m", max_tokens: 5, messages: [{ role: "user", content: "hi" }] }),
    )
    const said = providerFailure(
      "Anthropic",
      { ...settings, provider: "anthropic" },
      new AbortController().signal,
      error,
    )
    expect(said.message).toContain(`Anthropic at ${baseUrl} could not be used: no connection (ECONNREFUSED)`)
    expect(said.message).not.toContain(settings.apiKey)
  })
})
