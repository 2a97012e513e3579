// `chimera chat [--node N] [--incident ID] [--model M] [-q QUESTION] [--json]`: ask the fleet's
// assistant. Without -q it is a conversation (chat-repl.ts); with -q one question, its answer, and
// the chat is deleted (--json prints the exchange as JSON instead). It talks to the control plane's
// chat API as the CLI's identity (chat-auth.ts); the assistant's actions that change anything wait
// for the person's approval, asked on the terminal. Output is plain (no colours, no spinner, nothing
// redrawn) when stdout is not a terminal or NO_COLOR is set.
import { defineCommand } from "citty"
import { z } from "zod"
import { type ChatContext, ModelName } from "../../protocol/ai.ts"
import { NodeId } from "../../protocol/ids.ts"
import { useColor } from "../../protocol/use-color.ts"
import type { ViewOptions } from "./chat-answer-view.ts"
import { type ChatApi, ChatApiError, createChatApi, describeUnavailable } from "./chat-api.ts"
import { chatIdentity, promptLogin } from "./chat-auth.ts"
import { createChatInput } from "./chat-input.ts"
import { showQuestion } from "./chat-question.ts"
import { describeFailure, runRepl } from "./chat-repl.ts"
import { type ChatRoom, IncidentArg } from "./chat-slash.ts"
import { exchange } from "./chat-turn.ts"
import { controlUrl } from "./credentials.ts"
import { CliError } from "./errors.ts"
import { color, printJson, say } from "./output.ts"

const Flags = z.object({
  node: NodeId.optional(),
  incident: IncidentArg.optional(),
  model: ModelName.optional(),
  question: z.string().trim().min(1, "expected a question").max(32_768, "expected at most 32768 characters").optional(),
  json: z.boolean().default(false),
})

/** Exit status of `-q` when the assistant asked to do something and there was nobody to approve it. */
export const UNANSWERED_STATUS = 2

function _flags(args: Record<string, unknown>) {
  const parsed = Flags.safeParse({
    node: args.node ?? args.object,
    incident: args.incident,
    model: args.model,
    question: args.question,
    json: args.json === true,
  })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new CliError(`--${String(issue?.path[0] ?? "")}: ${issue?.message}`, "E_ARG")
  }
  if (parsed.data.json && parsed.data.question === undefined)
    throw new CliError(
      "--json goes with -q QUESTION; for a conversation in JSON, use `chimera code --mode rpc`",
      "E_ARG",
    )
  return parsed.data
}

function _viewOptions(): ViewOptions {
  const colors = useColor()
  const tty = process.stdout.isTTY === true
  return {
    live: colors,
    colors,
    columns: tty ? process.stdout.columns || 80 : Number.POSITIVE_INFINITY,
    rows: tty ? process.stdout.rows || 24 : Number.POSITIVE_INFINITY,
  }
}

/** A chat on the context asked for; AI_UNAVAILABLE becomes the sentence that says how to configure one. */
async function _open(api: ChatApi, context: ChatContext, model: string | undefined) {
  try {
    return await api.create({ nodeId: context.nodeId, incidentId: context.incidentId, model })
  } catch (error) {
    if (error instanceof ChatApiError && error.code === "AI_UNAVAILABLE")
      throw new CliError(describeUnavailable(error.message), "E_AI")
    if (error instanceof ChatApiError) throw new CliError(describeFailure(error), "E_API")
    throw error
  }
}

export default defineCommand({
  meta: { name: "chat", description: "Ask the fleet's assistant; changes it proposes wait for your approval" },
  args: {
    node: { type: "string", description: "Bind the chat to this node" },
    object: { type: "string", description: "Same as --node" },
    incident: {
      type: "string",
      description: "Bind the chat to this incident (its id in chimera incidents) or fleet event (its number)",
    },
    model: {
      type: "string",
      description: "Use this model instead of the default: one the control plane allows ([ai] models)",
    },
    question: {
      type: "string",
      alias: "q",
      description:
        "Ask one question, print the answer and exit (2: it proposed a change that was not approved; only a terminal is asked)",
    },
    json: { type: "boolean", description: "With -q: print the exchange as JSON" },
  },
  async run({ args }) {
    const flags = _flags(args)
    const url = controlUrl()
    const input = createChatInput()
    const canPrompt = input.interactive && !flags.json
    let identity = await chatIdentity(url, canPrompt)
    const api = createChatApi(url, () => identity.token)
    const context: ChatContext = { nodeId: flags.node ?? null, incidentId: flags.incident ?? null }
    const created = await _open(api, context, flags.model)
    const relogin = async () => {
      identity = await promptLogin(url, `${url} no longer accepts this session`)
      return identity.me
    }
    const room: ChatRoom = {
      api,
      chatId: created.chatId,
      me: identity.me,
      model: flags.model,
      context,
      relogin: canPrompt && !process.env.CHIMERA_TOKEN ? relogin : null,
    }
    if (flags.question === undefined) return runRepl(room, input, _viewOptions())

    let result: Awaited<ReturnType<typeof exchange>>
    try {
      result = await exchange({
        api,
        chatId: room.chatId,
        message: flags.question,
        input,
        view: flags.json ? "silent" : _viewOptions(),
        ask: input.interactive && !flags.json,
      })
    } finally {
      input.close()
      await api.remove(room.chatId).catch(() => {})
    }
    if (flags.json) printJson({ chatId: room.chatId, ...result })
    else if (result.pendingQuestion) {
      showQuestion(result.pendingQuestion)
      say(
        `${color.yellow("!")} not approved: no terminal to ask on, so it was not run and this one-question chat is deleted; ask in \`chimera chat\`, which asks you to approve or reject\n`,
      )
    } else if (result.cancelled) say(`${color.dim("(answer cancelled)")}\n`)
    if (result.error) {
      if (flags.json) process.exit(1)
      throw new CliError(describeFailure(result.error), result.error.code === "AI_UNAVAILABLE" ? "E_AI" : "E_API")
    }
    if (result.pendingQuestion) process.exit(UNANSWERED_STATUS)
  },
})
