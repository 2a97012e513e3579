// Command sessions and their history (the command API's, on fleet nodes): a session names who opened
// it and on which node its commands run; its shell state (working directory, exported variables) lives on the node itself, and
// here only what the API reports and lists. Kept in the control plane's database, so replicas on one
// PostgreSQL share them and a restart loses none.
import type { SQL } from "bun"
import type { CommandHistoryEntry, CommandSessionRecord, CommandStorePort } from "../../domain/command-service.ts"
import type { Dialect, Migration } from "./migrations.ts"

export const COMMAND_MIGRATIONS: Migration[] = [
  {
    version: 4,
    name: "command sessions and history",
    statements: (d: Dialect) => [
      `CREATE TABLE command_sessions (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        node TEXT,
        client_info TEXT,
        created_at TEXT NOT NULL,
        last_activity TEXT NOT NULL,
        command_count INTEGER NOT NULL DEFAULT 0,
        current_directory TEXT,
        closed_at TEXT
      )`,
      `CREATE TABLE command_history (
        id ${d === "postgres" ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"},
        session_id TEXT NOT NULL,
        at TEXT NOT NULL,
        node TEXT NOT NULL,
        command TEXT NOT NULL,
        exit_code INTEGER,
        success INTEGER NOT NULL,
        execution_time ${d === "postgres" ? "DOUBLE PRECISION" : "REAL"} NOT NULL,
        risk TEXT NOT NULL,
        request_id TEXT NOT NULL
      )`,
      "CREATE INDEX command_history_by_session ON command_history (session_id, id)",
    ],
  },
]

type SessionRow = {
  id: string
  owner: string
  node: string | null
  client_info: string | null
  created_at: string
  last_activity: string
  command_count: number | string
  current_directory: string | null
  closed_at: string | null
}

type HistoryRow = {
  at: string
  node: string
  command: string
  exit_code: number | string | null
  success: number | string | boolean
  execution_time: number | string
  risk: string
  request_id: string
}

const toSession = (r: SessionRow): CommandSessionRecord => ({
  id: r.id,
  owner: r.owner,
  node: r.node,
  clientInfo: r.client_info === null ? null : (JSON.parse(r.client_info) as Record<string, unknown>),
  createdAt: r.created_at,
  lastActivity: r.last_activity,
  commandCount: Number(r.command_count),
  currentDirectory: r.current_directory,
  closedAt: r.closed_at,
})

const toEntry = (r: HistoryRow): CommandHistoryEntry => ({
  at: r.at,
  node: r.node,
  command: r.command,
  exitCode: r.exit_code === null ? null : Number(r.exit_code),
  success: r.success === true || Number(r.success) === 1,
  executionTime: Number(r.execution_time),
  risk: r.risk as CommandHistoryEntry["risk"],
  requestId: r.request_id,
})

export function commandStore(db: SQL): CommandStorePort {
  return {
    async createSession(s) {
      const rows: { id: string }[] = await db`
        INSERT INTO command_sessions (id, owner, node, client_info, created_at, last_activity, command_count)
        VALUES (${s.id}, ${s.owner}, ${s.node}, ${s.clientInfo === null ? null : JSON.stringify(s.clientInfo)},
                ${s.createdAt}, ${s.lastActivity}, 0)
        ON CONFLICT (id) DO NOTHING
        RETURNING id`
      return rows.length === 1
    },
    async getSession(id) {
      const rows: SessionRow[] = await db`SELECT * FROM command_sessions WHERE id = ${id}`
      return rows[0] ? toSession(rows[0]) : null
    },
    async closeSession(id, at) {
      const rows: { id: string }[] =
        await db`UPDATE command_sessions SET closed_at = ${at} WHERE id = ${id} AND closed_at IS NULL RETURNING id`
      return rows.length === 1
    },
    async recordRun(sessionId, entry, currentDirectory) {
      await db.begin(async (tx) => {
        await tx`
          INSERT INTO command_history (session_id, at, node, command, exit_code, success, execution_time, risk, request_id)
          VALUES (${sessionId}, ${entry.at}, ${entry.node}, ${entry.command}, ${entry.exitCode}, ${entry.success ? 1 : 0},
                  ${entry.executionTime}, ${entry.risk}, ${entry.requestId})`
        await tx`
          UPDATE command_sessions
          SET command_count = command_count + 1, last_activity = ${entry.at}, node = COALESCE(node, ${entry.node}),
              current_directory = COALESCE(${currentDirectory}, current_directory)
          WHERE id = ${sessionId}`
      })
    },
    async history(sessionId, limit) {
      const rows: HistoryRow[] = await db`
        SELECT at, node, command, exit_code, success, execution_time, risk, request_id FROM command_history
        WHERE session_id = ${sessionId} ORDER BY id DESC LIMIT ${limit}`
      return rows.reverse().map(toEntry)
    },
  }
}
