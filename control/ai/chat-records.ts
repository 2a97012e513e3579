// What the AI chat keeps: chats (whose they are, their model and context), their messages in order,
// the questions their model asked (an action waiting for a human's yes or no), and the steering
// messages queued to join the conversation (at the running turn's next model call, or right after
// the result of the question they wait behind). The store behind this port is the control plane's
// database, so a restart, or another replica sharing it, loses none of them.

import type { z } from "zod"
import type { ChatMessage, ConfirmationType, QueuedMessage } from "../../protocol/ai.ts"

export interface ChatRecord {
  id: number
  /** The owner's stable subject (user id or `token:<id>`) and the name the audit log shows. */
  ownerSubject: string
  ownerName: string
  createdAt: string
  model: string
  nodeId: string | null
  incidentId: number | string | null
}

export type QuestionStatus = "pending" | "running" | "approved" | "rejected" | "expired" | "withdrawn"

export interface QuestionRecord {
  id: number
  chatId: number
  toolCallId: string
  toolName: string
  toolArgs: Record<string, unknown>
  confirmationType: z.infer<typeof ConfirmationType>
  text: string
  context: string
  model: string
  createdAt: string
  expiresAt: string
  status: QuestionStatus
  answeredBy: string | null
  answeredAt: string | null
}

/** Steering messages that may wait for one chat at once: past them a steer is refused, not stored. */
export const MAX_QUEUED_MESSAGES = 20
/** What became of a steering message: queued, refused (what it would wait behind has ended), or refused as one too many. */
export type Queued = "queued" | "closed" | "full"

export interface ChatStorePort {
  createChat(c: Omit<ChatRecord, "id">): Promise<ChatRecord>
  getChat(id: number): Promise<ChatRecord | null>
  listChats(ownerSubject: string): Promise<ChatRecord[]>
  updateChat(id: number, c: Pick<ChatRecord, "model" | "nodeId" | "incidentId">): Promise<void>
  /**
   * Deletes the chat, its messages, questions, queued messages, turn events and lapsed turn lease; false (nothing
   * deleted) while a turn's lease on it is live (turn-lease.ts).
   */
  deleteChat(id: number): Promise<boolean>
  messages(chatId: number): Promise<ChatMessage[]>
  appendMessages(chatId: number, messages: ChatMessage[]): Promise<void>
  /**
   * Compaction: the first `count` messages replaced by `summary`, at once; whatever was appended
   * after them (meanwhile too: a question settled by its expiry or on another replica) is kept.
   * False when the conversation no longer has that many messages.
   */
  replaceHead(chatId: number, count: number, summary: ChatMessage): Promise<boolean>
  /**
   * Queues a steering message: behind the running `turn`, only while a live turn lease of the chat
   * takes steers, on whichever replica; behind a question (its id), only while that
   * question is still open (pending, or its approved action running): "queued". Else "closed", or
   * "full" when MAX_QUEUED_MESSAGES already wait for the chat, and nothing is queued.
   */
  queueMessage(chatId: number, behind: number | "turn", message: ChatMessage): Promise<Queued>
  queuedMessages(chatId: number): Promise<QueuedMessage[]>
  /** Moves every queued message into the conversation, in order; each is delivered once, whoever calls. */
  deliverQueued(chatId: number): Promise<ChatMessage[]>
  addQuestion(q: Omit<QuestionRecord, "id" | "status" | "answeredBy" | "answeredAt">): Promise<QuestionRecord>
  getQuestion(id: number): Promise<QuestionRecord | null>
  /** The chat's question that still waits for an answer. */
  openQuestion(chatId: number): Promise<QuestionRecord | null>
  /** The chat's approved questions whose action has not finished (or whose control plane stopped during it). */
  runningQuestions(chatId: number): Promise<QuestionRecord[]>
  /** Every question still pending, for expiry after a restart. */
  pendingQuestions(): Promise<QuestionRecord[]>
  /** Moves a question from `from` to `to`; false when it was no longer in `from` (someone else won). */
  moveQuestion(id: number, from: QuestionStatus, to: QuestionStatus, by: string | null, at: string): Promise<boolean>
  /**
   * Settles a question (`from` → `to`, compare-and-set) and, in the same transaction, appends `result`
   * (the tool result the model reads) and then the messages queued behind it; false if someone else won.
   */
  settleQuestion(
    q: QuestionRecord,
    from: QuestionStatus,
    to: QuestionStatus,
    by: string | null,
    at: string,
    result: ChatMessage,
  ): Promise<boolean>
}
