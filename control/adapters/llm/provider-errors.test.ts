// A provider that cannot be reached, as both SDKs really fail against a closed loopback port: the
// chat's error says there was no connection and why, whichever SDK it came from.
import { describe, expect, test } from "bun:test"
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import type { ProviderSettings } from "./provider.ts"
import { providerFailure, retryAfterSeconds } from "./provider-errors.ts"

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

describe("a provider that asks to wait", () => {
  test("a 429 with Retry-After says how long, from both SDKs as they really fail", async () => {
    // The providers' rate-limit answers, each with its own error body and a Retry-After of 20 s.
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname.endsWith("/messages")
          ? Response.json(
              {
                type: "error",
                error: { type: "rate_limit_error", message: "Number of requests has exceeded your rate limit" },
              },
              { status: 429, headers: { "retry-after": "20" } },
            )
          : Response.json(
              { error: { message: "Rate limit reached for requests", type: "requests", code: "rate_limit_exceeded" } },
              { status: 429, headers: { "retry-after": "20" } },
            ),
    })
    try {
      const url = `http://127.0.0.1:${server.port}`
      const openai = new OpenAI({ apiKey: settings.apiKey, baseURL: `${url}/v1`, maxRetries: 0 })
      const anthropic = new Anthropic({ apiKey: settings.apiKey, baseURL: url, maxRetries: 0 })
      const errors = [
        await failure(() =>
          openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }),
        ),
        await failure(() =>
          anthropic.messages.create({ model: "m", max_tokens: 8, messages: [{ role: "user", content: "hi" }] }),
        ),
      ]
      for (const error of errors) {
        const said = providerFailure("the provider", { ...settings, baseUrl: url }, new AbortController().signal, error)
        expect(said.message).toContain("answered 429: ")
        expect(said.message).toEndWith("; it asks to be asked again in 20 s")
      }
    } finally {
      server.stop(true)
    }
  })

  test("Retry-After as seconds or as an HTTP date; anything else is no wait", () => {
    const now = Date.parse("2026-12-07T12:00:00Z")
    expect(retryAfterSeconds("7", now)).toBe(7)
    expect(retryAfterSeconds("Mon, 07 Dec 2026 12:01:30 GMT", now)).toBe(90)
    expect(retryAfterSeconds("Mon, 07 Dec 2026 11:00:00 GMT", now)).toBe(0)
    for (const v of [null, undefined, "", "soon", "-5", "1e9999999"]) expect(retryAfterSeconds(v, now)).toBeNull()
  })
})
