// The slash commands of `chimera chat`: lines starting with "/" are ours, not the assistant's.
// /node (or /object) and /incident rebind the chat's context mid-conversation (PATCH /chat/{id});
// /clear ends this chat and starts a fresh one on the same context; /status shows what the chat is
// bound to and how full its context is; /quit and /exit leave (Ctrl+D too). Arguments are checked here
// with the contract's schemas, so a typo gets a sentence, not a 422.
import { z } from "zod"
import { type ChatContext, type ChatId, type ChatState, IncidentId } from "../../protocol/ai.ts"
import { NodeId } from "../../protocol/ids.ts"
import type { ChatApi } from "./chat-api.ts"
import { describeMe, type Me } from "./identity.ts"
import { color, field, printFields, say } from "./output.ts"

export interface ChatRoom {
  api: ChatApi
  chatId: ChatId
  me: Me
  /** The model asked for with --model (the control plane's default otherwise). */
  model: string | undefined
  context: ChatContext
  /** Logs in again after the session expired (null: no terminal to ask on, or CHIMERA_TOKEN is set). */
  relogin: (() => Promise<Me>) | null
}

export const HELP: [string, string][] = [
  ["/help", "show these commands"],
  ["/node NAME", "bind the chat to node NAME (also /object NAME)"],
  ["/incident ID", "bind the chat to an incident (chimera incidents) or a fleet event's number"],
  ["/status", "show the chat, its context, model and size"],
  ["/clear", "start a new chat (this one is deleted)"],
  ["/quit, /exit", "end the chat and delete it (also Ctrl+D)"],
]

/** What the chat binds as its incident: an incident's UUID (`chimera incidents`) or a fleet event's number. */
export const IncidentArg = z
  .string()
  .regex(
    /^(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i,
    "expected an incident's id, as `chimera incidents` lists it, or a fleet event's number, as `chimera events` does",
  )
  .transform((s) => (/^\d+$/.test(s) ? Number(s) : s.toLowerCase()))
  .pipe(IncidentId)

export const describeContext = (c: ChatContext) =>
  [c.nodeId ? `node ${field(c.nodeId)}` : "", c.incidentId ? `incident ${c.incidentId}` : ""]
    .filter(Boolean)
    .join(", ") || "the whole fleet"

const _rebound = (room: ChatRoom, state: ChatState) => {
  room.context = state.context
  say(`${color.dim("Context:")} ${describeContext(state.context)}\n`)
}

const _problem = (text: string) => say(`${color.yellow("!")} ${text}\n`)

/** Runs one slash command; "quit" when the person wants to leave. */
export async function runSlash(line: string, room: ChatRoom): Promise<"quit" | "done"> {
  const [name = "", ...rest] = line.trim().split(/\s+/)
  const arg = rest.join(" ")
  switch (name.toLowerCase()) {
    case "/quit":
    case "/exit":
      return "quit"
    case "/help":
      for (const [cmd, what] of HELP) say(`  ${color.bold(cmd.padEnd(14))} ${what}\n`)
      return "done"
    case "/node":
    case "/object": {
      const node = NodeId.safeParse(arg)
      if (!node.success) {
        _problem(
          `${name} NAME: ${arg ? `${field(arg)} is not a node name` : "which node?"} (as \`chimera nodes list\` shows)`,
        )
        return "done"
      }
      _rebound(room, await room.api.update(room.chatId, { nodeId: node.data }))
      return "done"
    }
    case "/incident": {
      const id = IncidentArg.safeParse(arg)
      if (!id.success) {
        _problem(`/incident ID: ${id.error.issues[0]?.message}`)
        return "done"
      }
      _rebound(room, await room.api.update(room.chatId, { incidentId: id.data }))
      return "done"
    }
    case "/clear": {
      const old = room.chatId
      await room.api.remove(old)
      const { nodeId, incidentId } = room.context
      const created = await room.api.create({ nodeId, incidentId, model: room.model })
      room.chatId = created.chatId
      say(`${color.dim(`Chat ${old} deleted; new chat ${created.chatId} on`)} ${describeContext(room.context)}\n`)
      return "done"
    }
    case "/status": {
      const s = await room.api.state(room.chatId)
      printFields([
        ["chat", `${s.chatId} (since ${s.created})`],
        ["control plane", room.api.url],
        ["user", describeMe(room.me)],
        ["context", describeContext(s.context)],
        ["model", `${s.model} (${s.provider})`],
        ["messages", String(s.messages.length)],
        ["context size", `~${s.estimatedTokens} of ${s.maxContextTokens} tokens`],
        ["question", s.pendingQuestion ? `${s.pendingQuestion.text} (pending)` : "none"],
      ])
      return "done"
    }
    default:
      _problem(`unknown command ${field(name)}: /help lists them`)
      return "done"
  }
}
