// The model provider's key never reaches a chat's user. A provider (or the proxy in front of it) that
// names the key it was sent in its error, as some OpenAI-compatible servers do, has that error passed
// on to whoever wrote the message, a viewer included: the key is cut out of it first, for both
// providers, in the JSON answer and in the stream's error event alike.
import { expect, setDefaultTimeout, test } from "bun:test"
import { aiSettingsFor, chatCall, eventStream } from "./support/ai-chat.ts"
import { addUser, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { type Provider, startLlmServer } from "./support/llm-server.ts"

setDefaultTimeout(60_000)

for (const provider of ["anthropic", "openai"] as Provider[]) {
  test(`a ${provider} error that quotes the provider's key reaches a viewer without it`, async () => {
    await using llm = await startLlmServer(provider)
    await using cp = await startInProcess({ ai: aiSettingsFor(llm) })
    await addUser(cp, "vera", "viewer")
    const vera = await login(cp, "vera")
    const { chatId } = (await (await chatCall(cp.url, vera, "POST", "/chat", {})).json()) as { chatId: number }
    const echo = (key: string) => ({ status: 401, errorMessage: `Incorrect API key provided: ${key}. Check it.` })
    llm.script(echo(llm.apiKey), echo(encodeURIComponent(llm.apiKey)))
    const res = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "hello" })
    const text = await res.text()
    expect(res.status).toBe(503)
    expect(text).toContain("Incorrect API key provided")
    expect(text).not.toContain(llm.apiKey)
    const streamed = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message/stream`, { message: "again" })
    const events = JSON.stringify(await eventStream(streamed).all())
    expect(events).toContain("Incorrect API key provided")
    expect(events).not.toContain(llm.apiKey)
    expect(events).not.toContain(encodeURIComponent(llm.apiKey))
  })
}
