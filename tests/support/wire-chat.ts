// The AI chat driven through its HTTP API against the wire-exact model server (wire-llm-server.ts):
// replies as each provider sends them (a few words, or a run_command proposal), a reply held
// mid-stream until the test lets it go, and the chat's routes as the admin calls them.
import { expect } from "bun:test"
import type { ChatState, MessageResponse, SteerResponse } from "../../protocol/ai.ts"
import { aiSettingsFor, chatCall, doneOf, eventStream } from "./ai-chat.ts"
import { startInProcess, type TestControlPlane } from "./control-plane.ts"
import type { LlmServer, Provider } from "./llm-server.ts"
import { waitFor } from "./wait.ts"
import {
  anthropicEvents,
  anthropicSse,
  openAiChunks,
  openAiSse,
  shred,
  startWireLlmServer,
  type WireLlmServer,
  type WireReply,
} from "./wire-llm-server.ts"

export const COMMAND = "systemctl restart nginx"

/** The model's words, and if asked a run_command call proposing COMMAND, as `provider` sends them. */
export function reply(provider: Provider, text: string, propose = false): WireReply {
  const args = ["", `{"command": "${COMMAND}", `, '"nodes": ["web-1"]}']
  const sse =
    provider === "anthropic"
      ? anthropicSse(
          anthropicEvents({
            blocks: [
              { text: [text] },
              ...(propose ? [{ toolUse: { id: "toolu_01", name: "run_command", json: args } }] : []),
            ],
            stopReason: propose ? "tool_use" : "end_turn",
          }),
        )
      : openAiSse(
          openAiChunks({
            text: [text],
            toolCalls: propose ? [{ id: "call_01", name: "run_command", json: args }] : [],
          }),
        )
  return { pieces: shred(sse) }
}

/** A reply held after its first bytes until the test lets it go. */
export function held(r: WireReply): { reply: WireReply; release: () => void } {
  let release = () => {}
  const until = new Promise<void>((resolve) => {
    release = resolve
  })
  return { reply: { ...r, gate: { after: 3, until } }, release }
}

export async function plane(provider: Provider, more: { questionTtlSeconds?: number; dataDir?: string } = {}) {
  const llm = await startWireLlmServer(provider)
  const cp = await startInProcess({
    ...(more.dataDir ? { dataDir: more.dataDir } : {}),
    ai: aiSettingsFor(
      llm as unknown as LlmServer,
      more.questionTtlSeconds ? { questionTtlSeconds: more.questionTtlSeconds } : {},
    ),
  })
  return { llm, cp }
}

export const call = (cp: TestControlPlane, method: string, path: string, body?: unknown) =>
  chatCall(cp.url, cp.adminToken, method, path, body)

export async function newChat(cp: TestControlPlane): Promise<number> {
  return ((await (await call(cp, "POST", "/chat", {})).json()) as { chatId: number }).chatId
}

export async function state(cp: TestControlPlane, chatId: number): Promise<ChatState> {
  return (await (await call(cp, "GET", `/chat/${chatId}`)).json()) as ChatState
}

export async function steer(cp: TestControlPlane, chatId: number, message: string): Promise<SteerResponse> {
  const res = await call(cp, "POST", `/chat/${chatId}/steer`, { message })
  expect(res.status).toBe(200)
  return (await res.json()) as SteerResponse
}

/** Roles and texts of the stored conversation, tool results cut to their first words. */
export const shape = (s: ChatState) =>
  s.messages.map((m) => [m.role, m.role === "tool" ? m.content.split(" ").slice(0, 3).join(" ") : m.content])

/**
 * Sends `message` on `cp` as a streamed request whose model answer (`answer`) is held mid-stream;
 * resolves once the model has the call, with the turn's events, how to let the answer go, and the
 * index of the model's request.
 */
export async function heldMessage(
  llm: WireLlmServer,
  cp: TestControlPlane,
  chatId: number,
  answer: WireReply,
  message = "nginx is down",
) {
  const proposal = held(answer)
  llm.script(proposal.reply)
  const before = llm.requests.length
  const res = await call(cp, "POST", `/chat/${chatId}/message/stream`, { message })
  expect(res.status).toBe(200)
  const stream = eventStream(res)
  await waitFor(
    "the model's call",
    async () => llm.requests.length,
    (n) => n > before,
  )
  return { stream, release: proposal.release, request: before }
}

/**
 * Sends `message`; the model's answer proposing COMMAND is held mid-stream while `during` runs, so
 * what it sends lands during the call that ends with the question. Returns the turn's `done`.
 */
export async function askWhile(
  llm: WireLlmServer,
  cp: TestControlPlane,
  chatId: number,
  during: () => Promise<void>,
): Promise<MessageResponse> {
  const turn = await heldMessage(llm, cp, chatId, reply(llm.provider, "I will restart nginx.", true))
  await during()
  turn.release()
  return doneOf(await turn.stream.all())
}

/** Where `needle` first appears in what the model was sent, -1 if nowhere. */
export const at = (llm: WireLlmServer, request: number, needle: string) =>
  JSON.stringify(llm.requests[request]?.body.messages).indexOf(needle)
