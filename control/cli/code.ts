// `chimera code --mode rpc [--node N] [--incident ID] [--model M]`: the fleet's assistant driven
// headless, for editors, GUIs and scripts: JSON-lines commands on stdin, responses and events on
// stdout (control/rpc/messages.ts has the protocol). stdout carries nothing but those lines;
// diagnostics go to stderr. It opens one chat as the CLI's identity (CHIMERA_TOKEN, the login
// session or the local admin token; stdin is the protocol, so it never prompts) and deletes it when
// stdin ends, once every command read has been answered.
import { defineCommand } from "citty"
import { z } from "zod"
import { ModelName } from "../../protocol/ai.ts"
import { NodeId } from "../../protocol/ids.ts"
import { readLines } from "../rpc/line-reader.ts"
import type { RpcEvent } from "../rpc/messages.ts"
import { createRpcSession } from "../rpc/session.ts"
import { ChatApiError, createChatApi, describeUnavailable } from "./chat-api.ts"
import { IncidentArg } from "./chat-slash.ts"
import { controlCredential, controlUrl } from "./credentials.ts"
import { CliError } from "./errors.ts"
import { color, jsonLine, say, warn } from "./output.ts"

/** The longest command line taken: a message of 32768 characters fits even with every one escaped. */
export const MAX_LINE_BYTES = 256 * 1024
/** How many read lines may wait for their turn before reading pauses (a flood cannot grow memory). */
const MAX_QUEUED = 64

const Flags = z.object({
  mode: z.literal("rpc", { error: 'expected "rpc" (JSON lines on stdin/stdout)' }),
  node: NodeId.optional(),
  incident: IncidentArg.optional(),
  model: ModelName.optional(),
})

const emit = (event: RpcEvent) => say(`${jsonLine(event)}\n`)

export default defineCommand({
  meta: {
    name: "code",
    description: "Drive the fleet's assistant headless: --mode rpc speaks JSON lines on stdin/stdout",
  },
  args: {
    mode: { type: "string", description: "rpc: JSON-lines commands on stdin, events on stdout", required: true },
    node: { type: "string", description: "Bind the chat to this node" },
    incident: {
      type: "string",
      description: "Bind the chat to this incident (its id in chimera incidents) or fleet event (its number)",
    },
    model: {
      type: "string",
      description: "Use this model instead of the default: one the control plane allows ([ai] models)",
    },
  },
  async run({ args }) {
    const flags = Flags.safeParse({ mode: args.mode, node: args.node, incident: args.incident, model: args.model })
    if (!flags.success) {
      const issue = flags.error.issues[0]
      throw new CliError(`--${String(issue?.path[0] ?? "")}: ${issue?.message}`, "E_ARG")
    }
    const url = controlUrl()
    const api = createChatApi(url, controlCredential().token)
    let chatId: number
    try {
      const f = flags.data
      chatId = (await api.create({ nodeId: f.node ?? null, incidentId: f.incident ?? null, model: f.model })).chatId
    } catch (error) {
      if (!(error instanceof ChatApiError)) throw error
      const message = error.code === "AI_UNAVAILABLE" ? describeUnavailable(error.message) : error.message
      emit({ type: "error", message, code: error.code })
      throw new CliError(message, "E_API")
    }
    const session = createRpcSession(api, chatId, emit)
    const end = async (status: number) => {
      await api.remove(chatId).catch((error: Error) => warn(`${color.yellow("!")} ${error.message}\n`))
      process.exit(status)
    }
    process.once("SIGTERM", () => void end(143))
    process.once("SIGINT", () => void end(130))

    let queued = 0
    for await (const line of readLines(process.stdin, MAX_LINE_BYTES)) {
      queued++
      const handled = session.handle(line).finally(() => queued--)
      if (queued >= MAX_QUEUED) await handled
    }
    // Nobody is left to answer a question asked from here on; what was asked stays unanswered.
    await session.drain()
    await end(0)
  },
})
