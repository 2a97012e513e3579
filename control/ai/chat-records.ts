// What the AI chat keeps: chats (whose they are, their model and context), their messages in order,
// and the questions their model asked (an action waiting for a human's yes or no). The store behind
// this port is the control plane's database, so a restart loses none of them.

import type { z } from "zod"
import type { ChatMessage, ConfirmationType } from "../../protocol/ai.ts"

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

export interface ChatStorePort {
  createChat(c: Omit<ChatRecord, "id">): Promise<ChatRecord>
  getChat(id: number): Promise<ChatRecord | null>
  listChats(ownerSubject: string): Promise<ChatRecord[]>
  updateChat(id: number, c: Pick<ChatRecord, "model" | "nodeId" | "incidentId">): Promise<void>
  /** The chat, its messages and its questions. */
  deleteChat(id: number): Promise<void>
  messages(chatId: number): Promise<ChatMessage[]>
  appendMessages(chatId: number, messages: ChatMessage[]): Promise<void>
  /** Compaction: the whole conversation replaced at once. */
  replaceMessages(chatId: number, messages: ChatMessage[]): Promise<void>
  addQuestion(q: Omit<QuestionRecord, "id" | "status" | "answeredBy" | "answeredAt">): Promise<QuestionRecord>
  getQuestion(id: number): Promise<QuestionRecord | null>
  /** The chat's question that still waits for an answer. */
  openQuestion(chatId: number): Promise<QuestionRecord | null>
  /** Every question still pending, for expiry after a restart. */
  pendingQuestions(): Promise<QuestionRecord[]>
  /** Moves a question from `from` to `to`; false when it was no longer in `from` (someone else won). */
  moveQuestion(id: number, from: QuestionStatus, to: QuestionStatus, by: string | null, at: string): Promise<boolean>
}
