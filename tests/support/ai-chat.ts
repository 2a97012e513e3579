// The AI chat's REST API as tests call it: a control plane whose `[ai]` points at a scripted model
// (llm-server.ts), and the routes under /api/v1/ai with a bearer token, streamed answers read as the
// contract's events (protocol/ai.ts).

import type { AiSettings } from "../../control/adapters/llm/provider.ts"
import { type ChatStreamEvent, type MessageResponse, parseChatStreamEvent } from "../../protocol/ai.ts"
import type { LlmServer } from "./llm-server.ts"
import { streamText } from "./stream.ts"

export const AI = "/api/v1/ai"

export function aiSettingsFor(llm: LlmServer, more: Partial<AiSettings> = {}): AiSettings {
  return {
    provider: llm.provider,
    model: llm.provider === "anthropic" ? "claude-test-1" : "gpt-test-1",
    models: [],
    baseUrl: llm.baseUrl,
    apiKey: llm.apiKey,
    timeoutMs: 60_000,
    questionTtlSeconds: 300,
    maxContextTokens: 100_000,
    turnLeaseSeconds: 30,
    ...more,
  }
}

export function chatCall(url: string, token: string | null, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = {}
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers["content-type"] = "application/json"
  return fetch(`${url}${AI}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
}

/** The events of a text/event-stream body, checked against the contract. */
export function parseEvents(text: string): ChatStreamEvent[] {
  const events: ChatStreamEvent[] = []
  for (const block of text.split("\n\n")) {
    const lines = block.split("\n").filter((l) => !l.startsWith(":"))
    const name = lines.find((l) => l.startsWith("event: "))?.slice(7)
    const data = lines.find((l) => l.startsWith("data: "))?.slice(6)
    if (name === undefined || data === undefined) continue
    const e = parseChatStreamEvent(name, data)
    if (e === null) throw new Error(`unknown event ${name}`)
    events.push(e)
  }
  return events
}

/** A streamed route read as it arrives: `until` reads on until a condition on the events holds. */
export function eventStream(res: Response) {
  if (!res.body) throw new Error("no body")
  const text = streamText(res.body)
  return {
    events: () => parseEvents(text.text),
    async until(enough: (events: ChatStreamEvent[]) => boolean) {
      await text.until((t) => enough(parseEvents(t)))
      return parseEvents(text.text)
    },
    async all() {
      await text.until(() => false)
      return parseEvents(text.text)
    },
  }
}

/** The `done` event that must end a stream. */
export function doneOf(events: ChatStreamEvent[]): MessageResponse {
  const last = events.at(-1)
  if (last?.event !== "done") throw new Error(`the stream ended with ${JSON.stringify(last)}`)
  return last.data
}
