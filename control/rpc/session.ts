// One RPC session: a chat on the control plane driven by commands read from a line stream. Commands
// are handled one after another, in the order they arrive, so `set_model` then `get_state` shows the
// new model; but a turn (started by `prompt` or resumed by `answer`) streams in the background once
// the control plane has taken it, so `steer`, `cancel` and `get_state` are handled while it runs.
// Only one turn runs at a time, as on the control plane. Nothing here writes anywhere itself: events
// go to `emit`, which the command wires to stdout.
import type { ChatId, Question } from "../../protocol/ai.ts"
import { type ChatApi, ChatApiError, type ChatEvents } from "../cli/chat-api.ts"
import type { Line } from "./line-reader.ts"
import { questionEvent, type RpcCommand, type RpcEvent, type RpcId } from "./messages.ts"
import { parseCommand } from "./parse-command.ts"

export interface RpcSession {
  /** Queues one input line; resolves when the line has been handled (not its whole turn). */
  handle(line: Line): Promise<void>
  /** Resolves when every command read so far, turns included, has been answered. */
  drain(): Promise<void>
  /** The question the assistant is waiting on, if any. */
  readonly pendingQuestion: Question | null
}

interface Turn {
  /** The control plane's id of the turn, from its stream's first event: what a `cancel` names. */
  id: string | undefined
  /** Set by a `cancel`: whether the control plane stopped this turn (false: it had ended already). */
  cancelled: Promise<boolean> | null
  done: Promise<void>
}

const _failure = (error: unknown) =>
  error instanceof ChatApiError ? `${error.message} (${error.code})` : `unexpected failure: ${(error as Error).message}`

export function createRpcSession(api: ChatApi, chatId: ChatId, emit: (event: RpcEvent) => void): RpcSession {
  let queue: Promise<void> = Promise.resolve()
  let turn: Turn | null = null
  let question: Question | null = null

  const respond = (command: string, id: RpcId | null | undefined, error = "", data?: Record<string, unknown>) =>
    emit({ type: "response", command, id: id ?? null, success: error === "", error, ...(data ? { data } : {}) })

  /** Streams a taken turn's events out; its command's response comes last. */
  const _stream = (command: RpcCommand, events: ChatEvents): Turn => {
    const current: Turn = { id: undefined, cancelled: null, done: Promise.resolve() }
    current.done = (async () => {
      let text = ""
      let error = ""
      try {
        for await (const e of events) {
          if (e.event === "turn") current.id = e.data.turnId
          else if (e.event === "token") {
            text += e.data.text
            emit({ type: "message", role: "assistant", content: e.data.text, done: false })
          } else if (e.event === "tool") {
            const { tool_call_id, tool_name, tool_args, status, result } = e.data
            emit({ type: "tool_execution", tool_call_id, tool_name, tool_args, status, result })
          } else if (e.event === "question") {
            question = e.data
            emit(questionEvent(e.data))
          } else if (e.event === "done") {
            const asked = e.data.pendingQuestion
            if (asked && asked.id !== question?.id) emit(questionEvent(asked))
            question = asked
            // Steers that came too late for this turn wait behind its question: say so, not silence.
            if (asked && e.data.queued?.length) emit({ type: "queued", question_id: asked.id, messages: e.data.queued })
          } else error = `${e.data.message} (${e.data.code})`
        }
      } catch (caught) {
        error = _failure(caught)
      }
      // A cancelled turn ends like any other (its text so far, then done): the cancel's answer says which.
      if (current.cancelled && (await current.cancelled)) error = "cancelled"
      emit({ type: "message", role: "assistant", content: text, done: true })
      if (turn === current) turn = null
      respond(command.type, command.id, error)
    })()
    return current
  }

  const _startTurn = async (command: RpcCommand, start: () => Promise<ChatEvents>) => {
    if (turn)
      return respond(
        command.type,
        command.id,
        "a turn is running: steer it, cancel it, or wait for its response (TURN_RUNNING)",
      )
    const events = await start()
    // A new message withdraws the question left unanswered (the control plane does the same).
    if (command.type === "prompt") question = null
    turn = _stream(command, events)
  }

  const _run = async (c: RpcCommand): Promise<void> => {
    switch (c.type) {
      case "prompt":
        return _startTurn(c, () => api.send(chatId, { message: c.message }))
      case "answer": {
        const questionId = c.question_id ?? question?.id
        if (questionId === undefined) return respond(c.type, c.id, "no question is pending (QUESTION_INVALID)")
        const body = { questionId, positive: c.positive, selectedOption: c.selected_option ?? -1 }
        return _startTurn(c, () => api.answer(chatId, body))
      }
      case "steer": {
        const r = await api.steer(chatId, c.message)
        return respond(c.type, c.id, "", { queued_behind: r.queuedBehind, question_id: r.questionId })
      }
      case "cancel": {
        // Its own turn, by id: one that ended meanwhile is not confused with a turn started since.
        const stopping = api.cancel(chatId, turn?.id)
        if (turn)
          turn.cancelled = stopping.then(
            () => true,
            () => false,
          )
        await stopping
        return respond(c.type, c.id)
      }
      case "get_state": {
        const s = await api.state(chatId)
        emit({
          type: "state",
          id: c.id ?? null,
          chat_id: s.chatId,
          model: s.model,
          provider: s.provider,
          messages: s.messages,
          context: { node_id: s.context.nodeId, incident_id: s.context.incidentId },
          pending_question: s.pendingQuestion?.id ?? null,
          queued_messages: s.queuedMessages,
          turn_running: s.turnRunning,
          estimated_tokens: s.estimatedTokens,
          max_context_tokens: s.maxContextTokens,
        })
        return respond(c.type, c.id)
      }
      case "compact": {
        const r = await api.compact(chatId)
        return respond(c.type, c.id, "", {
          summarised_messages: r.summarisedMessages,
          tokens_before: r.tokensBefore,
          tokens_after: r.tokensAfter,
        })
      }
      case "set_model":
        await api.update(chatId, { model: c.model })
        return respond(c.type, c.id)
    }
  }

  const _dispatch = async (line: Line): Promise<void> => {
    if ("problem" in line) {
      // The command is not run, but a client waiting on its id hears why.
      const known = line.readable === undefined ? null : parseCommand(line.readable)
      const [type, id] =
        known === null
          ? ["", null]
          : known.ok
            ? [known.command.type, known.command.id ?? null]
            : [known.command, known.id]
      return respond(type, id, `line ${line.n}: ${line.problem}`)
    }
    if (line.text.trim() === "") return
    const parsed = parseCommand(line.text)
    if (!parsed.ok) return respond(parsed.command, parsed.id, `line ${line.n}: ${parsed.error}`)
    try {
      await _run(parsed.command)
    } catch (error) {
      respond(parsed.command.type, parsed.command.id, _failure(error))
    }
  }

  return {
    handle(line) {
      queue = queue.then(() => _dispatch(line))
      return queue
    },
    async drain() {
      await queue
      while (turn) await turn.done
    },
    get pendingQuestion() {
      return question
    },
  }
}
