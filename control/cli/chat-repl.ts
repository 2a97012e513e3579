// The conversation loop of `chimera chat`: `You>` lines go to the assistant, slash commands are run
// here, and the chat is deleted on the way out, however the person leaves (Ctrl+D, /quit, end of
// piped input, SIGTERM, SIGHUP). A refusal or a lost connection during one exchange is said in one
// line and the chat goes on; the next message tries again.
import type { ViewOptions } from "./chat-answer-view.ts"
import { ChatApiError, describeUnavailable } from "./chat-api.ts"
import type { ChatInput } from "./chat-input.ts"
import { type ChatRoom, describeContext, runSlash } from "./chat-slash.ts"
import { exchange } from "./chat-turn.ts"
import { CliError } from "./errors.ts"
import { describeMe } from "./identity.ts"
import { color, field, say, warn } from "./output.ts"

export const YOU = "You> "

/**
 * One line for an exchange that ended early, with what to do about it; an API refusal shows its status
 * and code as every command's do, `(422 VALIDATION_FAILED)`.
 */
export function describeFailure(e: { code: string; message: string; status?: number }): string {
  switch (e.code) {
    case "AI_UNAVAILABLE":
      return describeUnavailable(e.message)
    case "TIMEOUT":
      return `the model did not answer in time (${field(e.message)}); ask again, or ask for less at once`
    case "QUESTION_INVALID":
      return `the question expired or was already answered (${field(e.message)})`
    case "AUTH_FAILED":
      return `the control plane no longer accepts this session (${field(e.message)}); run \`chimera login\``
    default:
      return `${field(e.message)} (${e.status === undefined ? "" : `${e.status} `}${field(e.code)})`
  }
}

const _failed = (e: { code: string; message: string; status?: number }) =>
  say(`${color.red("!")} ${describeFailure(e)}\n`)

/** Says what failed; a session that expired is renewed at the terminal, and the chat goes on. */
async function _recover(room: ChatRoom, e: { code: string; message: string; status?: number }): Promise<void> {
  if (e.code !== "AUTH_FAILED" || !room.relogin) return _failed(e)
  try {
    room.me = await room.relogin()
  } catch (error) {
    if (!(error instanceof CliError)) throw error
    return _failed({ code: error.code, message: error.message })
  }
  say(`${color.dim(`Logged in again as ${describeMe(room.me)}; send your message again.`)}\n`)
}

export async function runRepl(room: ChatRoom, input: ChatInput, view: ViewOptions): Promise<void> {
  let leaving = false
  const leave = async (status: number) => {
    if (leaving) return
    leaving = true
    await room.api.remove(room.chatId).catch(() => {})
    process.exit(status)
  }
  const onTerm = () => void leave(143)
  const onHup = () => void leave(129)
  // Outside an answer (where Ctrl+C cancels it), SIGINT from a pipe's sender ends the chat as EOF would.
  const onInt = () => void leave(130)
  process.on("SIGTERM", onTerm)
  process.on("SIGHUP", onHup)
  if (!input.interactive) process.on("SIGINT", onInt)

  say(`Connected to ${room.api.url} as ${color.bold(describeMe(room.me))}. Context: ${describeContext(room.context)}\n`)
  say(`${color.dim("Type /help for commands, /quit to exit.")}\n\n`)
  try {
    for (;;) {
      const line = await input.line(color.green(color.bold(YOU)))
      if (line === null) break
      const text = line.trim()
      if (text === "") continue
      try {
        if (text.startsWith("/")) {
          if ((await runSlash(text, room)) === "quit") break
          continue
        }
        if (!input.interactive) process.off("SIGINT", onInt)
        const done = await exchange({ api: room.api, chatId: room.chatId, message: text, input, view, ask: true })
        if (done.cancelled) say(`${color.dim("(answer cancelled)")}\n`)
        if (done.error) await _recover(room, done.error)
      } catch (error) {
        if (!(error instanceof ChatApiError)) throw error
        await _recover(room, error)
      } finally {
        if (!input.interactive) process.on("SIGINT", onInt)
      }
      say("\n")
    }
  } finally {
    process.off("SIGTERM", onTerm)
    process.off("SIGHUP", onHup)
    process.off("SIGINT", onInt)
    input.close()
    // Even when something unexpected ends the loop, the chat does not outlive the session.
    leaving = true
    await room.api.remove(room.chatId).catch((error: Error) => warn(`${color.yellow("!")} ${error.message}\n`))
  }
  say(`${color.dim(`Chat ${room.chatId} ended.`)}\n`)
}
