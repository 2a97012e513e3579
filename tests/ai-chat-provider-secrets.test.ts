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
  test(`${provider}: an error that quotes the provider's key reaches a viewer without it`, async () => {
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

test("a secret the model repeats, cut between its tokens, streams redacted; the text around it arrives whole", async () => {
  await using llm = await startLlmServer("openai")
  await using cp = await startInProcess({ ai: aiSettingsFor(llm) })
  const { chatId } = (await (await chatCall(cp.url, cp.adminToken, "POST", "/chat", {})).json()) as { chatId: number }
  const secret = `chm_api_${"S".repeat(20)}${"t".repeat(23)}`
  // As a tokenizer cuts it: the prefix, then the body in pieces, then the sentence goes on.
  llm.script({ text: ["The token is ", "chm_", "api_", secret.slice(8, 30), secret.slice(30), " — rotate it."] })
  const res = await chatCall(cp.url, cp.adminToken, "POST", `/chat/${chatId}/message/stream`, { message: "show" })
  const events = await eventStream(res).all()
  const streamed = events.flatMap((e) => (e.event === "token" ? [e.data.text] : [])).join("")
  expect(streamed).toBe("The token is chm_[redacted] — rotate it.")
  expect(JSON.stringify(events)).not.toContain("SSSSSSSS")
  expect(events.at(-1)?.event).toBe("done")
})
