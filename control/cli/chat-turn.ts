// One exchange of `chimera chat`: a message goes out, the turn streams back into the view, and each
// pending question the assistant asks is put to the person and answered, which resumes the turn, until
// the assistant has answered. Ctrl+C while it runs asks the control plane to cancel the turn (the
// stream then ends by itself) and a second Ctrl+C stops waiting at once; either way the chat goes on.
import type { ChatId, Question, ToolEvent } from "../../protocol/ai.ts"
import { type AnswerView, createAnswerView, type ViewOptions } from "./chat-answer-view.ts"
import { type ChatApi, ChatApiError, type ChatEvents } from "./chat-api.ts"
import type { ChatInput } from "./chat-input.ts"
import { askQuestion } from "./chat-question.ts"

export interface Exchange {
  /** The assistant's text, all of it, in order. */
  response: string
  tools: ToolEvent[]
  /** The question left unanswered (no way to ask it), if any. */
  pendingQuestion: Question | null
  cancelled: boolean
  /** Why the exchange ended early: a refusal (with its HTTP status), a broken stream, a stream's error event. */
  error: { code: string; message: string; status?: number } | null
}

export interface ExchangeOptions {
  api: ChatApi
  chatId: ChatId
  message: string
  input: ChatInput
  view: ViewOptions | "silent"
  /** Put pending questions to the person (false: leave them pending and return). */
  ask: boolean
}

interface TurnOutcome {
  question: Question | null
  cancelled: boolean
  error: Exchange["error"]
}

async function _turn(
  events: (signal: AbortSignal) => Promise<ChatEvents>,
  o: ExchangeOptions,
  view: AnswerView,
  into: Exchange,
): Promise<TurnOutcome> {
  const abort = new AbortController()
  // Whether the control plane stopped the turn (it then ends its stream as usual), once Ctrl+C asked.
  let cancelled: Promise<boolean> | null = null
  /** The turn this stream carries: a Ctrl+C cancels it, never a turn that follows it. */
  let turnId: string | undefined
  const stopWatching = o.input.watchInterrupt(() => {
    if (cancelled) return abort.abort()
    view.waiting("Cancelling")
    // If the control plane cannot cancel (the turn just ended, or it is unreachable), stop reading here.
    cancelled = o.api.cancel(o.chatId, turnId).then(
      () => true,
      () => {
        abort.abort()
        return true
      },
    )
  })
  let question: Question | null = null
  let error: Exchange["error"] = null
  view.waiting("Thinking")
  try {
    for await (const e of await events(abort.signal)) {
      if (e.event === "turn") turnId = e.data.turnId
      else if (e.event === "token") {
        into.response += e.data.text
        view.token(e.data.text)
      } else if (e.event === "tool") {
        into.tools.push(e.data)
        view.tool(e.data)
      } else if (e.event === "question") question = e.data
      else if (e.event === "done") question = e.data.pendingQuestion ?? question
      else error = e.data
    }
  } catch (caught) {
    if (!abort.signal.aborted) {
      if (!(caught instanceof ChatApiError)) throw caught
      error = { code: caught.code, message: caught.message, status: caught.status }
    }
  } finally {
    stopWatching()
    view.end()
  }
  const stopped = cancelled !== null && (await cancelled)
  return { question: stopped ? null : question, cancelled: stopped, error: stopped ? null : error }
}

/** Sends `message` and sees the exchange through, questions and all. */
export async function exchange(o: ExchangeOptions): Promise<Exchange> {
  const result: Exchange = { response: "", tools: [], pendingQuestion: null, cancelled: false, error: null }
  const view = createAnswerView(o.view)
  let outcome = await _turn((signal) => o.api.send(o.chatId, { message: o.message }, signal), o, view, result)
  while (outcome.question && !outcome.cancelled && !outcome.error) {
    const question = outcome.question
    if (!o.ask) {
      result.pendingQuestion = question
      break
    }
    const answer = await askQuestion(question, o.input)
    if (answer === null) {
      // Ctrl+C at the question: the turn waiting on it is cancelled, nothing runs.
      await o.api.cancel(o.chatId).catch(() => {})
      outcome = { question: null, cancelled: true, error: null }
      break
    }
    const body = { questionId: question.id, ...answer }
    outcome = await _turn((signal) => o.api.answer(o.chatId, body, signal), o, view, result)
  }
  result.cancelled = outcome.cancelled
  result.error = outcome.error
  return result
}
