// A control plane whose chat talks to the scripted model (llm-server.ts) through a gate
// (llm-gate.ts), for the tests and benchmark of the chat's clients: `chimera chat` and
// `chimera code --mode rpc`. The CLI's environment points at it with the admin token.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startInProcess, type TestControlPlane } from "./control-plane.ts"
import { type LlmGate, startLlmGate } from "./llm-gate.ts"
import { type LlmServer, type Provider, startLlmServer } from "./llm-server.ts"

export const TEST_MODEL = "scripted-model-1"

export interface ChatPlane extends AsyncDisposable {
  cp: TestControlPlane
  llm: LlmServer
  gate: LlmGate
  /** A HOME of its own for the CLI (no login session of the user's leaks in). */
  home: string
  /** The CLI's environment: this control plane, the admin token, no config file. */
  env: Record<string, string>
}

export async function startChatPlane(
  opts: { provider?: Provider; maxContextTokens?: number; questionTtlSeconds?: number; models?: string[] } = {},
): Promise<ChatPlane> {
  const llm = await startLlmServer(opts.provider ?? "anthropic")
  const gate = startLlmGate(llm.baseUrl)
  const cp = await startInProcess({
    ai: {
      provider: llm.provider,
      model: TEST_MODEL,
      models: opts.models ?? [],
      baseUrl: gate.baseUrl,
      apiKey: llm.apiKey,
      timeoutMs: 60_000,
      questionTtlSeconds: opts.questionTtlSeconds ?? 600,
      maxContextTokens: opts.maxContextTokens ?? 100_000,
      turnLeaseSeconds: 30,
    },
  })
  const home = await mkdtemp(join(tmpdir(), "chimera-chat-home-"))
  const stop = async () => {
    await cp.stop()
    await gate.stop()
    await llm.stop()
    await rm(home, { recursive: true, force: true })
  }
  return {
    cp,
    llm,
    gate,
    home,
    env: {
      HOME: home,
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: cp.adminToken,
      CHIMERA_DATA_DIR: join(home, "data"),
      CHIMERA_CONFIG_FILE: "",
    },
    stop,
    [Symbol.asyncDispose]: stop,
  } as ChatPlane & { stop: () => Promise<void> }
}

/** The caller's chats on the control plane (GET /api/v1/ai/chat). */
export async function chatIds(cp: TestControlPlane): Promise<number[]> {
  const res = await cp.api("/api/v1/ai/chat")
  const body = (await res.json()) as { chats: { chatId: number }[] }
  return body.chats.map((c) => c.chatId)
}
