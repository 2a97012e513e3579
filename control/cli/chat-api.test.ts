// The chat client's patience: a control plane that takes a request and then says nothing (no event,
// no keep-alive) ends the wait with NO_ANSWER instead of hanging the terminal; one that answers
// with something other than the contract is BAD_ANSWER. The control plane here is a stand-in at the
// HTTP boundary, since the real one always answers or keeps the stream alive.
import { describe, expect, test } from "bun:test"
import { ChatApiError, createChatApi } from "./chat-api.ts"

function standIn(handler: (req: Request) => Response | Promise<Response>) {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: handler })
  return { url: `http://127.0.0.1:${server.port}`, [Symbol.dispose]: () => void server.stop(true) }
}

const limits = { requestMs: 300, compactMs: 300, streamIdleMs: 300 }

describe("chat API client", () => {
  test("a stream that goes silent ends with NO_ANSWER", async () => {
    using cp = standIn(
      () =>
        new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode('event: token\ndata: {"text":"hi"}\n\n'))
            },
          }),
          { headers: { "content-type": "text/event-stream" } },
        ),
    )
    const api = createChatApi(cp.url, "t", limits)
    const seen: string[] = []
    const read = async () => {
      for await (const e of await api.send(1, { message: "x" })) seen.push(e.event)
    }
    const error = await read().catch((e: unknown) => e)
    expect(seen).toEqual(["token"])
    expect(error).toBeInstanceOf(ChatApiError)
    expect((error as ChatApiError).code).toBe("NO_ANSWER")
  })

  test("a request never answered ends with NO_ANSWER; an answer off the contract is BAD_ANSWER", async () => {
    using silent = standIn(() => new Promise<Response>(() => {}))
    const hung = await createChatApi(silent.url, "t", limits)
      .state(1)
      .catch((e: ChatApiError) => e.code)
    expect(hung).toBe("NO_ANSWER")
    using odd = standIn(() => Response.json({ chatId: "not a number" }))
    const bad = await createChatApi(odd.url, "t", limits)
      .state(1)
      .catch((e: ChatApiError) => e.code)
    expect(bad).toBe("BAD_ANSWER")
  })
})
