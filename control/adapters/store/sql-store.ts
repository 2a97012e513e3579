// The store port over Bun.SQL. SQLite is the default (one file in $CHIMERA_DATA_DIR, WAL); the same
// queries run on PostgreSQL for several control-plane replicas. Every method resolves only after its
// transaction commits, and the control plane acknowledges nothing to an agent before that, so a
// SIGKILL loses nothing acknowledged: SQLite in WAL mode with synchronous=NORMAL keeps every committed
// transaction across a process crash (only a power loss can take the last ones, which FULL would cover).
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { SQL } from "bun"
import type { AgentCommand, AgentPhase } from "../../../protocol/agent.ts"
import { displayCredentialUrl } from "../../../protocol/log.ts"
import type { NodeHealthSummary, NodeRecord } from "../../domain/node.ts"
import type { StorePort } from "../../domain/ports.ts"
import { StateError } from "../data-dir.ts"
import { replicaName } from "../replica-liveness.ts"
import { num, str } from "./columns.ts"
import { commandQueue } from "./command-queue.ts"
import { checkSchema, checkSqliteFile } from "./database-file.ts"
import { eventStore } from "./event-store.ts"
import { heartbeatStore } from "./heartbeat-store.ts"
import { type Dialect, MIGRATIONS } from "./migrations.ts"
import { attachHotPath, CACHE_KIB, detachHotPath, hotPathOf, writingNodes } from "./sqlite-hot-path.ts"
import { takeTurns } from "./sqlite-turns.ts"
import { CHECKPOINT_PAGES } from "./wal-checkpointer.ts"

type Row = Record<string, unknown>

/** A database URL without its user and password, to show. */
const shownUrl = displayCredentialUrl

export function dialectOf(url: string): Dialect {
  if (url.startsWith("sqlite:")) return "sqlite"
  if (url.startsWith("postgres://") || url.startsWith("postgresql://")) return "postgres"
  throw new StateError(
    `unsupported database URL ${JSON.stringify(shownUrl(url))} (CHIMERA_DB): use sqlite://PATH or postgres://…`,
  )
}

/** Opens the database (one Bun.SQL handle the fleet store and the auth store share). */
export async function openDatabase(url: string): Promise<{ db: SQL; dialect: Dialect }> {
  const dialect = dialectOf(url)
  const path = url.replace(/^sqlite:\/\//, "")
  if (dialect === "sqlite" && path !== ":memory:") {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    checkSqliteFile(path)
  }
  // Each replica's connections carry its name, which tells the others it runs (replica-liveness.ts).
  // SQLite's one connection is shared by every request: a statement must not run inside another
  // request's open transaction (sqlite-turns.ts).
  const db = dialect === "postgres" ? _postgres(url) : takeTurns(new SQL(url))
  if (dialect === "sqlite") {
    await db`PRAGMA journal_mode = WAL`
    await db`PRAGMA synchronous = NORMAL`
    await db`PRAGMA busy_timeout = 5000`
    await db.unsafe(`PRAGMA cache_size = ${CACHE_KIB}`)
    await db.unsafe(`PRAGMA wal_autocheckpoint = ${CHECKPOINT_PAGES}`)
    if (path !== ":memory:") attachHotPath(db, path)
  }
  try {
    await checkSchema(db, dialect, dialect === "sqlite" ? path : shownUrl(url))
  } catch (error) {
    detachHotPath(db)
    await db.close()
    // The first query is where an unreachable server or a refused login shows: say which database
    // (without its password) and what to check, rather than a bare "Failed to connect".
    if (dialect === "postgres" && !(error instanceof StateError))
      throw new StateError(
        `cannot use the PostgreSQL database ${shownUrl(url)} (CHIMERA_DB): ${(error as Error).message}; ` +
          "check that PostgreSQL runs there and that the user, password and database in the URL are right" +
          _encodingHint(url),
      )
    throw error
  }
  return { db, dialect }
}

/**
 * Said when the URL holds more than one `@`: an unencoded `@` in the password leaves a URL that parses,
 * but names another host (and user) than the one meant, so the connection fails for a reason the
 * server's error does not show.
 */
function _encodingHint(url: string): string {
  if (url.split("@").length <= 2) return ""
  return " (this URL holds more than one `@`: in the user and password, %-encode `@` as %40, `/` as %2F, `:` as %3A, `?` as %3F, `#` as %23)"
}

/**
 * A PostgreSQL handle, its URL read by Bun.SQL itself: it takes forms a WHATWG URL parser refuses, such
 * as a Unix socket's `postgres://USER@/DB?host=/run/postgresql`, and says only "Invalid URL" of one it
 * cannot read (a port past 65535 makes one too).
 */
function _postgres(url: string): SQL {
  try {
    return new SQL({ url, connection: { application_name: replicaName() } })
  } catch (error) {
    if ((error as { code?: string }).code !== "ERR_INVALID_URL") throw error
    throw new StateError(
      "CHIMERA_DB is not a URL PostgreSQL can be reached at: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE (a port up to 65535; %-encode special characters in the password), or postgres://USER@/DATABASE?host=SOCKET_DIR",
    )
  }
}

export async function createSqlStore(url: string): Promise<StorePort> {
  const { db, dialect } = await openDatabase(url)
  return sqlStore(db, dialect)
}

function toNode(r: Row): NodeRecord {
  return {
    id: String(r.id),
    hostname: String(r.hostname ?? ""),
    enrolledAt: String(r.enrolled_at),
    agentVersion: str(r.agent_version),
    desiredPath: str(r.desired_path),
    desiredSetAt: str(r.desired_set_at),
    profilePath: str(r.profile_path),
    currentPath: str(r.current_path),
    bootedPath: str(r.booted_path),
    agentDesiredPath: str(r.agent_desired_path),
    phase: str(r.phase) as AgentPhase | null,
    health: r.health ? (JSON.parse(String(r.health)) as NodeHealthSummary) : null,
    heartbeatIntervalSeconds: num(r.heartbeat_interval),
    lastHeartbeat: str(r.last_heartbeat),
    unreachable: num(r.unreachable) === 1,
    revoked: r.revoked_at !== null && r.revoked_at !== undefined,
    ackedSeq: num(r.acked_seq),
  }
}

export function sqlStore(db: SQL, dialect: Dialect): StorePort {
  const hot = hotPathOf(db)
  const beats = heartbeatStore(db, dialect)
  const { withHeld, writeHeld } = beats

  return {
    ...eventStore(db),
    ...commandQueue(db, dialect),

    async migrate() {
      await db.unsafe(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
      )
      const done = new Set(((await db`SELECT version FROM schema_migrations`) as Row[]).map((r) => num(r.version)))
      let applied = 0
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue
        await db.begin(async (tx) => {
          for (const statement of m.statements(dialect)) await tx.unsafe(statement)
          await tx`INSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, ${m.name}, ${new Date().toISOString()})`
        })
        applied++
      }
      return applied
    },

    async close() {
      // What the hot path could not write (a transaction held the lock) goes through this handle.
      await writeHeld(detachHotPath(db))
      await db.close()
    },

    async putApiToken(t) {
      await db`
        INSERT INTO api_tokens (id, name, token_hash, role, created_at) VALUES (${t.id}, ${t.name}, ${t.tokenHash}, ${t.role}, ${t.createdAt})
        ON CONFLICT (id) DO UPDATE SET token_hash = ${t.tokenHash}, revoked_at = NULL`
    },

    async createJoinToken(t) {
      await db`INSERT INTO join_tokens (token_hash, node_id, created_at, expires_at) VALUES (${t.tokenHash}, ${t.nodeId}, ${t.createdAt}, ${t.expiresAt})`
    },

    async redeemJoinToken(input) {
      // A re-enrolment gives the node a new credential: its kept row (with the old one) stops standing
      // before that commits, as for a revocation, so the old credential fails from the commit on.
      return writingNodes(hot, [input.nodeId], () =>
        db.begin(async (tx) => {
          const rows: Row[] =
            await tx`SELECT node_id, expires_at, used_at, used_by FROM join_tokens WHERE token_hash = ${input.tokenHash}`
          const token = rows[0]
          if (!token) return { ok: false, reason: "unknown" } as const
          if (token.used_at) {
            // The same enrolment again (its answer was lost): the node still holds the credential it chose.
            if (input.agentChosen && token.used_by === input.nodeId) {
              const node: Row[] = await tx`SELECT credential_hash FROM nodes WHERE id = ${input.nodeId}`
              if (node[0]?.credential_hash === input.credentialHash)
                return { ok: true, created: false, repeated: true } as const
            }
            // Cancelled by the node's revocation (auth-store.ts, revokeNode), not used by anyone.
            if (token.used_by === "(revoked)" && token.node_id === input.nodeId)
              return { ok: false, reason: "revoked" } as const
            return { ok: false, reason: "used" } as const
          }
          if (String(token.expires_at) <= input.now) return { ok: false, reason: "expired" } as const
          if (token.node_id && token.node_id !== input.nodeId) return { ok: false, reason: "wrong-node" } as const
          const existing: Row[] = await tx`SELECT id, removed_at FROM nodes WHERE id = ${input.nodeId}`
          // A token for no node in particular only creates nodes: taking over an enrolled node's identity
          // (and locking its agent out) needs a token the operator issued for that node. So does a
          // removed node's name: scripts and habits still name the retired machine, and what they send
          // it would go to whoever holds a leaked token.
          if (existing[0] && !token.node_id)
            return { ok: false, reason: existing[0].removed_at == null ? "taken" : "removed" } as const
          // Nor a machine the configuration names, for which the control plane would take the agent.
          if (input.configured && !token.node_id) return { ok: false, reason: "configured" } as const
          // Single use: only the transaction that flips used_at may enrol.
          const used: Row[] = await tx`
          UPDATE join_tokens SET used_at = ${input.now}, used_by = ${input.nodeId}
          WHERE token_hash = ${input.tokenHash} AND used_at IS NULL RETURNING token_hash`
          if (!used[0]) return { ok: false, reason: "used" } as const
          if (existing[0] && existing[0].removed_at != null) {
            // Another machine under a removed node's name: a node never heard from. What reached the old
            // row after its removal (a desired closure or a relayed command whose request found the node
            // just before) is not this machine's, nor is the old one's last heartbeat.
            await tx`
            UPDATE nodes SET credential_hash = ${input.credentialHash}, hostname = ${input.hostname},
              agent_version = ${input.agentVersion}, epoch = epoch + 1, acked_seq = 0, unreachable = 0,
              pending_credential_hash = NULL, rotation_requested_at = NULL, revoked_at = NULL, removed_at = NULL,
              enrolled_at = ${input.now}, credential_issued_at = ${input.now}, desired_path = NULL,
              desired_set_at = NULL, profile_path = NULL, current_path = NULL, booted_path = NULL,
              agent_desired_path = NULL, phase = NULL, health = NULL, last_heartbeat = NULL, last_heartbeat_ms = NULL
            WHERE id = ${input.nodeId}`
            await tx`
            UPDATE commands SET acked_at = ${input.now}, success = 0, output = ${"not delivered: the node was removed from the fleet"}
            WHERE node_id = ${input.nodeId} AND acked_at IS NULL`
            return { ok: true, created: false, repeated: false } as const
          }
          if (existing[0]) {
            // Re-enrolment with a token issued for this node: a new credential (any half-done rotation is
            // dropped, a revocation lifted) and a new report epoch (the agent's sequence starts again).
            // The enrolment is the agent's word that it is there: silence counts from it, not from the
            // last heartbeat before a revocation, which would have the sweep call it unreachable at once
            // (a node that never beat stays without one: NULL < ms is not true).
            const ms = Date.parse(input.now)
            await tx`
            UPDATE nodes SET credential_hash = ${input.credentialHash}, hostname = ${input.hostname},
              agent_version = ${input.agentVersion}, epoch = epoch + 1, acked_seq = 0, unreachable = 0,
              pending_credential_hash = NULL, rotation_requested_at = NULL, revoked_at = NULL,
              credential_issued_at = ${input.now},
              last_heartbeat = CASE WHEN last_heartbeat_ms < ${ms} THEN ${input.now} ELSE last_heartbeat END,
              last_heartbeat_ms = CASE WHEN last_heartbeat_ms < ${ms} THEN ${ms} ELSE last_heartbeat_ms END
            WHERE id = ${input.nodeId}`
            return { ok: true, created: false, repeated: false } as const
          }
          await tx`
          INSERT INTO nodes (id, hostname, credential_hash, enrolled_at, agent_version)
          VALUES (${input.nodeId}, ${input.hostname}, ${input.credentialHash}, ${input.now}, ${input.agentVersion})`
          return { ok: true, created: true, repeated: false } as const
        }),
      )
    },

    async getNode(id) {
      const rows: Row[] = await db`SELECT * FROM nodes WHERE id = ${id} AND removed_at IS NULL`
      return rows[0] ? toNode(withHeld(rows[0])) : null
    },

    async listNodes() {
      const rows: Row[] = await db`SELECT * FROM nodes WHERE removed_at IS NULL ORDER BY id`
      return rows.map((r) => toNode(withHeld(r)))
    },

    holdHeartbeat: beats.hold,
    recordHeartbeat: beats.record,

    async setDesired(nodeId, closure, command: AgentCommand) {
      // The node's kept row stops standing before the new closure commits: a heartbeat answered from it
      // between the commit and a forget after it said the old closure, and the agent switched back to it.
      return writingNodes(hot, [nodeId], () =>
        db.begin(async (tx) => {
          // A node removed since the caller found it takes no closure (nor its command).
          const set: Row[] = await tx`
            UPDATE nodes SET desired_path = ${closure}, desired_set_at = ${command.createdAt}
            WHERE id = ${nodeId} AND removed_at IS NULL RETURNING id`
          if (set.length === 0) return null
          const superseded: Row[] = await tx`
            UPDATE commands SET acked_at = ${command.createdAt}, success = 0, output = ${`superseded by command ${command.id}`}
            WHERE node_id = ${nodeId} AND kind = 'activate' AND acked_at IS NULL RETURNING id`
          await tx`
            INSERT INTO commands (id, node_id, kind, payload, created_at)
            VALUES (${command.id}, ${nodeId}, ${command.kind}, ${JSON.stringify(command)}, ${command.createdAt})`
          return { supersededCommands: superseded.map((r) => String(r.id)) }
        }),
      )
    },

    async markUnreachable(now, since, missed) {
      const nowMs = Date.parse(now)
      const sinceMs = Date.parse(since)
      // Heartbeats held in memory (sqlite-hot-path.ts) that the rows below would count silent go first,
      // through this handle when the hot path found the database busy.
      const due = hot?.writeDue(nowMs, missed) ?? []
      await writeHeld(due)
      hot?.settled(due)
      // Through Bun.SQL this scan of every row costs 10-100 ms under heartbeat load, its page cache
      // emptied by the hot path's writes; the hot path's own handle scans its cached pages in about 2 ms.
      if (beats.noneSilent(nowMs, sinceMs, missed)) return []
      // A control plane that was itself down has not heard anyone: count silence from its own start.
      // A revoked node cannot heartbeat: its silence is its revocation (a credential-revoked incident),
      // not a node gone missing to page someone about.
      const rows: Row[] = await db`
        UPDATE nodes SET unreachable = 1
        WHERE unreachable = 0 AND revoked_at IS NULL AND last_heartbeat_ms IS NOT NULL
          AND (CASE WHEN last_heartbeat_ms > ${sinceMs} THEN last_heartbeat_ms ELSE ${sinceMs} END)
              + heartbeat_interval * 1000 * ${missed} < ${nowMs}
        RETURNING *`
      // A heartbeat already past its credential lookup must see these as unreachable, and flip them back.
      hot?.forget(rows.map((r) => String(r.id)))
      return rows.map(toNode)
    },
  }
}
