// The model provider's redirects are not followed. A provider (or a proxy in front of it) answering
// 307 or 308 would otherwise have the SDK re-send the whole request, the conversation with the fleet's
// state and the key's header, to the address it names, and that address's answer reach the chat's
// user as the model's. Here the second address records whatever reaches it and answers in words the
// chat would pass on: it must hear nothing, and the chat says the provider redirected, for both
// providers, in the JSON answer and the stream.
import { expect, setDefaultTimeout, test } from "bun:test"
import { aiSettingsFor, chatCall, doneOf, eventStream } from "./support/ai-chat.ts"
import { addUser, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { json, startFakeService } from "./support/fake-service.ts"
import { type Provider, startLlmServer } from "./support/llm-server.ts"

setDefaultTimeout(60_000)

const ENDPOINT = { anthropic: "/v1/messages", openai: "/v1/chat/completions" } as const

for (const provider of ["anthropic", "openai"] as Provider[]) {
  test(`a ${provider} redirect to another server forwards nothing there, and the chat reports it`, async () => {
    await using llm = await startLlmServer(provider)
    await using elsewhere = startFakeService(() =>
      json(400, { type: "error", error: { type: "invalid_request_error", message: "Hijacked." } }),
    )
    await using cp = await startInProcess({ ai: aiSettingsFor(llm) })
    await addUser(cp, "vera", "viewer")
    const vera = await login(cp, "vera")
    const { chatId } = (await (await chatCall(cp.url, vera, "POST", "/chat", {})).json()) as { chatId: number }
    const location = `${elsewhere.url}${ENDPOINT[provider]}`

    llm.script({ redirect: { status: 307, location } }, { redirect: { status: 308, location } })
    const res = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "hello" })
    const said = (await res.json()) as { error: string; code: string }
    expect(res.status).toBe(503)
    expect(said.code).toBe("AI_UNAVAILABLE")
    expect(said.error).toContain(`answered 307, a redirect to ${elsewhere.url}, which is not followed`)
    expect(said.error).not.toContain("Hijacked")
    expect(said.error).not.toContain(llm.apiKey)

    const streamed = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message/stream`, { message: "again" })
    const events = await eventStream(streamed).all()
    const last = events.at(-1)
    expect(last?.event).toBe("error")
    expect(JSON.stringify(last?.data)).toContain("answered 308, a redirect")
    expect(JSON.stringify(events)).not.toContain("Hijacked")

    expect(llm.requests.length).toBe(2)
    expect(elsewhere.received).toEqual([])

    // The provider itself still streams as before.
    llm.script({ text: "Back to normal." })
    const ok = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message/stream`, { message: "and now?" })
    expect(doneOf(await eventStream(ok).all()).response).toBe("Back to normal.")
  })
}
