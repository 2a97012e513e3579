// The AI chat's use cases, one function each, behind the /api/v1/ai routes: chats belong to the user
// who made them (another user gets ACCESS_DENIED, an unknown id CHAT_NOT_FOUND); an admin may also
// see and answer any chat's pending question, which is how an action needing more than its owner's
// role gets approved (the rest of that turn then reads with no more than a chat's least role). A
// message or an answer starts a turn (agent-loop.ts); only one runs per chat, on whichever replica
// holds its lease (turn-lease.ts): a steer, a cancel or a delete sent to another replica reaches that
// turn through the store and a notification (chat-turns.ts). A chat runs on a model the config allows, whoever asked
// for another (model-choice.ts).
import type {
  AnswerRequest,
  ChatMessage,
  ChatState,
  ChatStreamEvent,
  CompactResponse,
  CreateChatRequest,
  Question,
  SendMessageRequest,
  SteerResponse,
  UpdateChatRequest,
} from "../../protocol/ai.ts"
import type { AiSettings } from "../adapters/llm/provider.ts"
import { leastRoleFor } from "../domain/auth/roles.ts"
import { ChimeraError } from "../domain/errors.ts"
import type { Clock, UserPrincipal } from "../domain/ports.ts"
import { type LoopDeps, runTurn } from "./agent-loop.ts"
import { answerQuestion } from "./answer.ts"
import { resolveContext } from "./chat-context.ts"
import { type ChatRecord, type ChatStorePort, MAX_QUEUED_MESSAGES, type QuestionRecord } from "./chat-records.ts"
import { type ChatTurnsDeps, createChatTurns } from "./chat-turns.ts"
import { compact } from "./compaction.ts"
import { estimateTokens } from "./conversation.ts"
import type { InternalApi } from "./internal-api.ts"
import type { LlmPort } from "./llm-port.ts"
import { chosenModel, modelInForce } from "./model-choice.ts"
import { createQuestionExpiry } from "./question-expiry.ts"
import { isExpired, settleUnrun, toWire } from "./questions.ts"
import { toolSpecs } from "./tools.ts"
import type { Listener, RunningTurn } from "./turns.ts"

/** Chats are kept until deleted; this bounds what one user can make the store hold. */
export const MAX_CHATS_PER_USER = 200

/**
 * Who the rest of a turn acts as once a question is answered. An approval lends the approver's rights
 * to the one action approved; the reads the model asks for next run at once, unasked, so when the
 * approver is not the chat's owner they run with the least role a chat needs (every read tool needs
 * no more): otherwise an admin's yes to something harmless would let a viewer's chat start a Nix
 * build on the control plane's host (check_congruence with a config_path).
 */
export function resumedAs(chat: ChatRecord, approver: UserPrincipal): UserPrincipal {
  if (approver.subject === chat.ownerSubject) return approver
  return { ...approver, role: leastRoleFor("fleet:read") }
}

/** How often a delete looks again whether another replica's turn has let the chat go. */
const DELETE_POLL_MS = 200
/** How long a delete waits for that beyond the lease (a holder that died lets it lapse by then). */
const DELETE_GRACE_MS = 5000

/** Where the chat's turns run, and how replicas tell each other of them: chat-turns.ts. */
export interface ChatsDeps extends Pick<ChatTurnsDeps, "leases" | "replica" | "cancelElsewhere" | "feed"> {
  store: ChatStorePort
  llm: LlmPort
  settings: AiSettings
  api: InternalApi
  clock: Clock
}

export function createChats(deps: ChatsDeps) {
  const { store, clock, settings } = deps
  // A turn over without a question waiting (answered, cancelled, failed, a compaction): the steering
  // messages it did not reach join the conversation as the next user messages. Behind a waiting
  // question they stay queued, for its result to come first.
  const turns = createChatTurns({
    leases: deps.leases,
    clock,
    replica: deps.replica,
    leaseMs: settings.turnLeaseSeconds * 1000,
    cancelElsewhere: deps.cancelElsewhere,
    feed: deps.feed,
    async ended(chatId) {
      if (!(await store.openQuestion(chatId))) await store.deliverQueued(chatId)
    },
  })
  const expiry = createQuestionExpiry(store, clock, settings.questionTtlSeconds)
  const unschedule = (id: number) => expiry.unschedule(id)
  const loop: LoopDeps = {
    llm: deps.llm,
    store,
    api: deps.api,
    clock,
    timeoutMs: settings.timeoutMs,
    questionTtlSeconds: settings.questionTtlSeconds,
    maxContextTokens: settings.maxContextTokens,
    asked: (q) => expiry.schedule(q),
  }

  /** The chat as it runs now: on a model the config still allows. */
  const inForce = (c: ChatRecord): ChatRecord => ({ ...c, model: modelInForce(settings, c.model) })

  async function access(id: number, who: UserPrincipal, approver = false): Promise<ChatRecord> {
    const stored = await store.getChat(id)
    if (!stored) throw new ChimeraError("CHAT_NOT_FOUND", `chat ${id} not found`)
    const chat = inForce(stored)
    if (chat.ownerSubject === who.subject || (approver && who.role === "admin")) return chat
    throw new ChimeraError("ACCESS_DENIED", `chat ${id} belongs to another user`)
  }

  /** The chat's pending question, expiring it first if its time is up. */
  async function pending(chatId: number): Promise<QuestionRecord | null> {
    const q = await store.openQuestion(chatId)
    if (!q || !isExpired(q, clock)) return q
    unschedule(q.id)
    await settleUnrun(store, q, "expired", null, clock.now())
    return null
  }

  const summary = (c: ChatRecord) => ({
    chatId: c.id,
    created: c.createdAt,
    model: c.model,
    context: { nodeId: c.nodeId, incidentId: c.incidentId },
  })

  async function state(chat: ChatRecord): Promise<ChatState> {
    // The question first: expiring it now appends its result, which the messages must then show.
    const q = await pending(chat.id)
    const messages = await store.messages(chat.id)
    const turnId = await turns.runningId(chat.id)
    return {
      ...summary(chat),
      provider: deps.llm.provider,
      messages,
      pendingQuestion: q ? toWire(q) : null,
      queuedMessages: await store.queuedMessages(chat.id),
      // A turn here still taking its lease has no id yet, and runs all the same.
      turnRunning: turns.runsHere(chat.id) || turnId !== null,
      turnId,
      estimatedTokens: estimateTokens("", messages, toolSpecs()),
      maxContextTokens: settings.maxContextTokens,
    }
  }

  return {
    async create(who: UserPrincipal, body: CreateChatRequest) {
      const model = body.model === undefined ? settings.model : chosenModel(settings, body.model)
      if ((await store.listChats(who.subject)).length >= MAX_CHATS_PER_USER)
        throw new ChimeraError(
          "RESOURCE_EXHAUSTED",
          `you have ${MAX_CHATS_PER_USER} chats, the most one user may keep; delete some (DELETE /api/v1/ai/chat/:id)`,
        )
      const ctx = await resolveContext(deps.api, who, body, { id: 0, model, nodeId: null, incidentId: null })
      const chat = await store.createChat({
        ownerSubject: who.subject,
        ownerName: who.name,
        createdAt: clock.now().toISOString(),
        model,
        ...ctx,
      })
      return { chatId: chat.id, created: chat.createdAt }
    },

    async list(who: UserPrincipal) {
      return { chats: (await store.listChats(who.subject)).map((c) => summary(inForce(c))) }
    },

    async get(id: number, who: UserPrincipal) {
      return state(await access(id, who))
    },

    async update(id: number, who: UserPrincipal, body: UpdateChatRequest) {
      const chat = await access(id, who)
      if (await turns.running(id)) throw new ChimeraError("TURN_RUNNING", "a turn is running: wait for it or cancel it")
      const model = body.model === undefined ? chat.model : chosenModel(settings, body.model)
      const ctx = await resolveContext(deps.api, who, body, chat)
      const next = { ...chat, ...ctx, model }
      await store.updateChat(id, next)
      return state(next)
    },

    async remove(id: number, who: UserPrincipal) {
      await access(id, who)
      // The turn may be running a tool: it finishes before the chat's rows go, so none outlive it. On
      // another replica it is asked to cancel and waited for; a holder that died lets its lease lapse.
      const tries = Math.ceil((settings.turnLeaseSeconds * 1000 + DELETE_GRACE_MS) / DELETE_POLL_MS)
      for (let i = 0; i < tries; i++) {
        await turns.stop(id)
        const q = await store.openQuestion(id)
        if (await store.deleteChat(id)) {
          if (q) unschedule(q.id)
          return { success: true as const }
        }
        if (i === 0) await turns.cancel(id)
        await new Promise((resolve) => setTimeout(resolve, DELETE_POLL_MS))
      }
      throw new ChimeraError(
        "TURN_RUNNING",
        `a turn of chat ${id} runs on another control-plane replica and has not stopped yet (it may be running a tool); try the delete again`,
      )
    },

    async message(id: number, who: UserPrincipal, body: SendMessageRequest, listener: Listener | null) {
      const chat = await access(id, who)
      if (turns.runsHere(id)) throw new ChimeraError("TURN_RUNNING", "a turn is running: steer it, cancel it or wait")
      const ctx = body.context ? await resolveContext(deps.api, who, body.context, chat) : null
      const bound = ctx ? { ...chat, ...ctx } : chat
      return turns.start(
        id,
        async (t) => {
          if (ctx) await store.updateChat(id, bound)
          // One past its deadline is expired (whoever was to expire it), not withdrawn by this message.
          const q = await pending(id)
          if (q) {
            unschedule(q.id)
            await settleUnrun(store, q, "withdrawn", who.name, clock.now())
          }
          // Steers a stopped control plane left queued come before this message.
          await store.deliverQueued(id)
          await store.appendMessages(id, [{ role: "user", content: body.message, at: clock.now().toISOString() }])
          return runTurn(loop, bound, who, t)
        },
        listener,
      )
    },

    /**
     * Hands the chat's running turn to `listener`, wherever it runs: from its first event (`turn`) to
     * its last (`done` or `error`); returns how to stop. NO_TURN_RUNNING when none runs.
     */
    async follow(id: number, who: UserPrincipal, listener: Listener): Promise<() => void> {
      await access(id, who)
      const following = await turns.follow(id, listener)
      if (following) return following
      throw new ChimeraError(
        "NO_TURN_RUNNING",
        `chat ${id} has no turn running to follow; GET /api/v1/ai/chat/${id} shows its conversation`,
      )
    },

    /** Another replica wrote new events of these chats' turns: their followers here read them. */
    turnEventsStored: turns.eventsStored,

    async question(id: number, who: UserPrincipal): Promise<{ question: Question | null }> {
      await access(id, who, true)
      const q = await pending(id)
      return { question: q ? toWire(q) : null }
    },

    async answer(
      id: number,
      who: UserPrincipal,
      body: Required<AnswerRequest>,
      listener: Listener | null,
    ): Promise<RunningTurn> {
      const chat = await access(id, who, true)
      if (await turns.running(id)) throw new ChimeraError("TURN_RUNNING", "a turn is running: wait for it or cancel it")
      const q = await store.getQuestion(body.questionId)
      const open = q && q.chatId === id ? await pending(id) : null
      if (!q || !open || open.id !== q.id)
        throw new ChimeraError(
          "QUESTION_INVALID",
          `question ${body.questionId} of chat ${id} is not waiting for an answer (never asked, already answered, or expired)`,
        )
      // The turn's slot is taken before the action runs, so no message can start a turn meanwhile; the
      // answer's own refusal (403, or a race lost: 409) is the request's error, not the stream's.
      let admitted: () => void = () => {}
      let refused: (e: unknown) => void = () => {}
      const gate = new Promise<void>((resolve, reject) => {
        admitted = resolve
        refused = reject
      })
      const turn = await turns.start(
        id,
        async (t) => {
          let events: ChatStreamEvent[]
          try {
            events = await answerQuestion({ store, api: deps.api, clock }, chat, open, who, body.positive, t.signal)
          } catch (error) {
            refused(error)
            throw error
          }
          unschedule(open.id)
          admitted()
          for (const e of events) t.emit(e)
          return runTurn(loop, chat, resumedAs(chat, who), t)
        },
        listener,
      )
      await gate
      return turn
    },

    async compact(id: number, who: UserPrincipal): Promise<CompactResponse> {
      const chat = await access(id, who)
      let result: CompactResponse | null = null
      const turn = await turns.start(
        id,
        async (t) => {
          result = await compact(loop, chat, t.signal)
          return { response: "", pendingQuestion: null }
        },
        null,
      )
      await turn.outcome
      return result ?? { success: true, summarisedMessages: 0, summary: "", tokensBefore: 0, tokensAfter: 0 }
    },

    async cancel(id: number, who: UserPrincipal, turnId?: string) {
      await access(id, who)
      if (await turns.cancel(id, turnId)) return { success: true as const }
      // A named turn that has ended is not a cancel of what came after it (another turn, its question).
      if (turnId !== undefined)
        throw new ChimeraError(
          "TURN_ENDED",
          `turn ${turnId} of chat ${id} is not running (it ended, or never ran here); nothing was cancelled. GET /api/v1/ai/chat/${id} shows what it stored, and the running turn's id if another runs`,
        )
      const q = await pending(id)
      if (q && (await settleUnrun(store, q, "withdrawn", who.name, clock.now()))) {
        unschedule(q.id)
        return { success: true as const }
      }
      throw new ChimeraError("NO_TURN_RUNNING", `chat ${id} has no turn running and no question waiting to cancel`)
    },

    async steer(id: number, who: UserPrincipal, message: string): Promise<SteerResponse> {
      await access(id, who)
      const m: ChatMessage = { role: "user", content: message, at: clock.now().toISOString() }
      const full = () =>
        new ChimeraError(
          "RESOURCE_EXHAUSTED",
          `${MAX_QUEUED_MESSAGES} messages already wait for chat ${id}'s next model call, the most one chat keeps; wait until they reach the model (GET /api/v1/ai/chat/${id} lists them)`,
        )
      // Whichever replica runs the turn, the steer waits in the store for its next model call.
      const behindTurn = await store.queueMessage(id, "turn", m)
      if (behindTurn === "full") throw full()
      if (behindTurn === "queued") return { success: true, queuedBehind: "turn", questionId: null }
      // No turn here, but a question waits (the turn ended with it, here or on another replica): the
      // steer does not withdraw it; it follows its result.
      const q = await pending(id)
      const behindQuestion = q ? await store.queueMessage(id, q.id, m) : "closed"
      if (behindQuestion === "full") throw full()
      if (q && behindQuestion === "queued") return { success: true, queuedBehind: "question", questionId: q.id }
      throw new ChimeraError(
        "NO_TURN_RUNNING",
        `chat ${id} has no turn running to steer and no question waiting; send a message instead`,
      )
    },

    /**
     * After a restart: pending questions expire on time again (question-expiry.ts). `alone` (SQLite: no other process
     * shares the store): the turn leases left are a stopped process's, and void.
     */
    async resume(alone: boolean) {
      if (alone) await deps.leases.clearTurns()
      await expiry.resume()
    },

    cancelAsked: turns.cancelAsked,

    /**
     * Stops the turns running here; resolves once they have ended (a tool they run finishes first),
     * or after `graceMs`, whichever comes first: a turn still running then keeps its lease until it lapses.
     */
    async close(graceMs: number) {
      expiry.close()
      let grace: ReturnType<typeof setTimeout> | undefined
      await Promise.race([turns.abortAll(), new Promise((resolve) => (grace = setTimeout(resolve, graceMs)))])
      clearTimeout(grace)
    },
  }
}

export type Chats = ReturnType<typeof createChats>
