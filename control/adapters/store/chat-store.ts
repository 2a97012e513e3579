// The AI chat's tables: chats, their messages in insertion order, their questions, and the steering
// messages waiting to join the conversation. A question's status moves by compare-and-set
// (`moveQuestion`, `settleQuestion`), so two approvers racing, or an approval racing the expiry, settle
// it exactly once, on one replica or several sharing PostgreSQL. Settling it writes the tool's result
// and moves the messages queued behind it into the conversation in one transaction, and a message is
// queued behind a question only while that question's row is locked and still open: so a message is
// never queued behind a question already settled, nor delivered twice, nor before the result it follows.
import type { SQL } from "bun"
import type { ChatMessage } from "../../../protocol/ai.ts"
import {
  type ChatRecord,
  type ChatStorePort,
  MAX_QUEUED_MESSAGES,
  type QuestionRecord,
  type QuestionStatus,
} from "../../ai/chat-records.ts"
import type { Clock } from "../../domain/ports.ts"
import { leaseClock } from "./lease-clock.ts"
import type { Dialect, Migration } from "./migrations.ts"

const serial = (d: Dialect) => (d === "postgres" ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT")

export const CHAT_MIGRATIONS: Migration[] = [
  {
    version: 12,
    name: "AI chats, their messages and questions",
    statements: (d) => [
      `CREATE TABLE ai_chats (
        id ${serial(d)},
        owner_subject TEXT NOT NULL,
        owner_name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        model TEXT NOT NULL,
        node_id TEXT,
        incident_id BIGINT
      )`,
      "CREATE INDEX ai_chats_by_owner ON ai_chats (owner_subject, id)",
      `CREATE TABLE ai_messages (
        id ${serial(d)},
        chat_id BIGINT NOT NULL,
        body TEXT NOT NULL
      )`,
      "CREATE INDEX ai_messages_by_chat ON ai_messages (chat_id, id)",
      `CREATE TABLE ai_questions (
        id ${serial(d)},
        chat_id BIGINT NOT NULL,
        tool_call_id TEXT NOT NULL,
        tool_name TEXT NOT NULL,
        tool_args TEXT NOT NULL,
        confirmation_type TEXT NOT NULL,
        text TEXT NOT NULL,
        context TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        status TEXT NOT NULL,
        answered_by TEXT,
        answered_at TEXT
      )`,
      "CREATE INDEX ai_questions_by_chat ON ai_questions (chat_id, status)",
      "CREATE INDEX ai_questions_by_status ON ai_questions (status)",
    ],
  },
  {
    version: 13,
    name: "a chat may be about an incident (its UUID) as well as a fleet event (its number)",
    // SQLite keeps a text value in a BIGINT column as text; PostgreSQL needs the column's type changed.
    statements: (d) =>
      d === "postgres" ? ["ALTER TABLE ai_chats ALTER COLUMN incident_id TYPE TEXT USING incident_id::TEXT"] : [],
  },
  {
    version: 17,
    name: "steering messages waiting for a chat's next model call or for its question's answer",
    statements: (d) => [
      `CREATE TABLE ai_queued (
        id ${serial(d)},
        chat_id BIGINT NOT NULL,
        body TEXT NOT NULL
      )`,
      "CREATE INDEX ai_queued_by_chat ON ai_queued (chat_id, id)",
    ],
  },
  {
    version: 18,
    name: "a chat's turn lease: which replica runs the chat's turn, until when, and what it was asked",
    statements: () => [
      `CREATE TABLE ai_turns (
        chat_id BIGINT PRIMARY KEY,
        lease TEXT NOT NULL,
        holder TEXT NOT NULL,
        until_ms BIGINT NOT NULL,
        accepting INTEGER NOT NULL,
        cancel INTEGER NOT NULL
      )`,
    ],
  },
]

type ChatRow = {
  id: number | string
  owner_subject: string
  owner_name: string
  created_at: string
  model: string
  node_id: string | null
  incident_id: number | string | null
}

type QuestionRow = {
  id: number | string
  chat_id: number | string
  tool_call_id: string
  tool_name: string
  tool_args: string
  confirmation_type: string
  text: string
  context: string
  model: string
  created_at: string
  expires_at: string
  status: string
  answered_by: string | null
  answered_at: string | null
}

const toChat = (r: ChatRow): ChatRecord => ({
  id: Number(r.id),
  ownerSubject: r.owner_subject,
  ownerName: r.owner_name,
  createdAt: r.created_at,
  model: r.model,
  nodeId: r.node_id,
  // A UUID names an incident, digits a fleet event (the column was BIGINT before incidents had UUIDs).
  incidentId:
    r.incident_id === null ? null : /^\d+$/.test(String(r.incident_id)) ? Number(r.incident_id) : String(r.incident_id),
})

const toQuestion = (r: QuestionRow): QuestionRecord => ({
  id: Number(r.id),
  chatId: Number(r.chat_id),
  toolCallId: r.tool_call_id,
  toolName: r.tool_name,
  toolArgs: JSON.parse(r.tool_args) as Record<string, unknown>,
  confirmationType: r.confirmation_type as QuestionRecord["confirmationType"],
  text: r.text,
  context: r.context,
  model: r.model,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  status: r.status as QuestionStatus,
  answeredBy: r.answered_by,
  answeredAt: r.answered_at,
})

const OPEN: QuestionStatus[] = ["pending", "running"]

export function chatStore(db: SQL, dialect: Dialect, clock: Clock): ChatStorePort {
  /** Whether a turn lease is live is judged by the lease's own clock (lease-clock.ts). */
  const now = leaseClock(dialect, clock)
  const insertMessages = async (tx: SQL, chatId: number, messages: ChatMessage[]) => {
    for (const m of messages) await tx`INSERT INTO ai_messages (chat_id, body) VALUES (${chatId}, ${JSON.stringify(m)})`
  }
  /** Takes the chat's queued messages out of the queue and appends them to the conversation, in order. */
  const deliver = async (tx: SQL, chatId: number): Promise<ChatMessage[]> => {
    const rows: { id: number | string; body: string }[] =
      await tx`DELETE FROM ai_queued WHERE chat_id = ${chatId} RETURNING id, body`
    const queued = rows.sort((a, b) => Number(a.id) - Number(b.id)).map((r) => JSON.parse(r.body) as ChatMessage)
    await insertMessages(tx, chatId, queued)
    return queued
  }
  return {
    async createChat(c) {
      const rows: ChatRow[] = await db`
        INSERT INTO ai_chats (owner_subject, owner_name, created_at, model, node_id, incident_id)
        VALUES (${c.ownerSubject}, ${c.ownerName}, ${c.createdAt}, ${c.model}, ${c.nodeId}, ${c.incidentId})
        RETURNING *`
      return toChat(rows[0] as ChatRow)
    },
    async getChat(id) {
      const rows: ChatRow[] = await db`SELECT * FROM ai_chats WHERE id = ${id}`
      return rows[0] ? toChat(rows[0]) : null
    },
    async listChats(owner) {
      const rows: ChatRow[] = await db`SELECT * FROM ai_chats WHERE owner_subject = ${owner} ORDER BY id`
      return rows.map(toChat)
    },
    async updateChat(id, c) {
      await db`UPDATE ai_chats SET model = ${c.model}, node_id = ${c.nodeId}, incident_id = ${c.incidentId} WHERE id = ${id}`
    },
    async deleteChat(id) {
      return db.begin(async (tx) => {
        // The chat's row is locked first: a turn taking its lease meanwhile holds it too (turn-lease-store.ts).
        if (dialect === "postgres") await tx`SELECT id FROM ai_chats WHERE id = ${id} FOR UPDATE`
        const live: unknown[] = await tx`SELECT 1 FROM ai_turns WHERE chat_id = ${id} AND until_ms >= ${now(tx)}`
        if (live.length > 0) return false
        await tx`DELETE FROM ai_turns WHERE chat_id = ${id}`
        await tx`DELETE FROM ai_turn_events WHERE chat_id = ${id}`
        await tx`DELETE FROM ai_messages WHERE chat_id = ${id}`
        await tx`DELETE FROM ai_queued WHERE chat_id = ${id}`
        await tx`DELETE FROM ai_questions WHERE chat_id = ${id}`
        await tx`DELETE FROM ai_chats WHERE id = ${id}`
        return true
      })
    },
    async messages(chatId) {
      const rows: { body: string }[] = await db`SELECT body FROM ai_messages WHERE chat_id = ${chatId} ORDER BY id`
      return rows.map((r) => JSON.parse(r.body) as ChatMessage)
    },
    async appendMessages(chatId, messages) {
      if (messages.length === 0) return
      await db.begin((tx) => insertMessages(tx, chatId, messages))
    },
    async replaceHead(chatId, count, summary) {
      return db.begin(async (tx) => {
        const head: { id: number | string }[] =
          await tx`SELECT id FROM ai_messages WHERE chat_id = ${chatId} ORDER BY id LIMIT ${count}`
        const first = head[0]
        if (head.length !== count || !first) return false
        const last = head.at(-1)?.id ?? first.id
        await tx`DELETE FROM ai_messages WHERE chat_id = ${chatId} AND id <= ${last}`
        // The summary takes the first summarised row's place, so it stays before what followed.
        await tx`INSERT INTO ai_messages (id, chat_id, body) VALUES (${first.id}, ${chatId}, ${JSON.stringify(summary)})`
        return true
      })
    },
    async queueMessage(chatId, behind, message) {
      return db.begin(async (tx) => {
        if (behind === "turn") {
          // Under the lease row's lock: the turn's `acceptSteers(false)` waits for this to commit.
          const rows: { accepting: number | string }[] =
            dialect === "postgres"
              ? await tx`SELECT accepting FROM ai_turns WHERE chat_id = ${chatId} AND until_ms >= ${now(tx)} FOR UPDATE`
              : await tx`SELECT accepting FROM ai_turns WHERE chat_id = ${chatId} AND until_ms >= ${now(tx)}`
          if (Number(rows[0]?.accepting ?? 0) !== 1) return "closed"
        } else {
          const rows: { status: string }[] =
            dialect === "postgres"
              ? await tx`SELECT status FROM ai_questions WHERE id = ${behind} AND chat_id = ${chatId} FOR UPDATE`
              : await tx`SELECT status FROM ai_questions WHERE id = ${behind} AND chat_id = ${chatId}`
          if (!OPEN.includes(rows[0]?.status as QuestionStatus)) return "closed"
        }
        // Counted under the same lock, so steers sent at once through several replicas stop at the cap too.
        const [waiting] = (await tx`SELECT COUNT(*) AS n FROM ai_queued WHERE chat_id = ${chatId}`) as {
          n: number | string
        }[]
        if (Number(waiting?.n ?? 0) >= MAX_QUEUED_MESSAGES) return "full"
        await tx`INSERT INTO ai_queued (chat_id, body) VALUES (${chatId}, ${JSON.stringify(message)})`
        return "queued"
      })
    },
    async queuedMessages(chatId) {
      const rows: { body: string }[] = await db`SELECT body FROM ai_queued WHERE chat_id = ${chatId} ORDER BY id`
      return rows.map((r) => {
        const m = JSON.parse(r.body) as ChatMessage
        return { content: m.content, at: m.at }
      })
    },
    async deliverQueued(chatId) {
      return db.begin((tx) => deliver(tx, chatId))
    },
    async addQuestion(q) {
      const rows: QuestionRow[] = await db`
        INSERT INTO ai_questions (chat_id, tool_call_id, tool_name, tool_args, confirmation_type, text, context,
                                  model, created_at, expires_at, status)
        VALUES (${q.chatId}, ${q.toolCallId}, ${q.toolName}, ${JSON.stringify(q.toolArgs)}, ${q.confirmationType},
                ${q.text}, ${q.context}, ${q.model}, ${q.createdAt}, ${q.expiresAt}, 'pending')
        RETURNING *`
      return toQuestion(rows[0] as QuestionRow)
    },
    async getQuestion(id) {
      const rows: QuestionRow[] = await db`SELECT * FROM ai_questions WHERE id = ${id}`
      return rows[0] ? toQuestion(rows[0]) : null
    },
    async openQuestion(chatId) {
      const rows: QuestionRow[] = await db`
        SELECT * FROM ai_questions WHERE chat_id = ${chatId} AND status = 'pending' ORDER BY id DESC LIMIT 1`
      return rows[0] ? toQuestion(rows[0]) : null
    },
    async runningQuestions(chatId) {
      const rows: QuestionRow[] =
        await db`SELECT * FROM ai_questions WHERE chat_id = ${chatId} AND status = 'running' ORDER BY id`
      return rows.map(toQuestion)
    },
    async pendingQuestions() {
      const rows: QuestionRow[] = await db`SELECT * FROM ai_questions WHERE status = 'pending' ORDER BY id`
      return rows.map(toQuestion)
    },
    async moveQuestion(id, from, to, by, at) {
      const rows: { id: number }[] = await db`
        UPDATE ai_questions SET status = ${to}, answered_by = COALESCE(${by}, answered_by), answered_at = ${at}
        WHERE id = ${id} AND status = ${from} RETURNING id`
      return rows.length === 1
    },
    async settleQuestion(q, from, to, by, at, result) {
      return db.begin(async (tx) => {
        const rows: { id: number }[] = await tx`
          UPDATE ai_questions SET status = ${to}, answered_by = COALESCE(${by}, answered_by), answered_at = ${at}
          WHERE id = ${q.id} AND status = ${from} RETURNING id`
        if (rows.length !== 1) return false
        await insertMessages(tx, q.chatId, [result])
        await deliver(tx, q.chatId)
        return true
      })
    },
  }
}
