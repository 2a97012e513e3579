// The trust layer's store over the same Bun.SQL handle as the fleet store (sql-store.ts): users,
// sessions, API tokens, node credentials and the audit log. Tokens and credentials arrive here already
// hashed; nothing in this file ever sees a secret in clear.
import type { SQL } from "bun"
import type {
  ApiTokenRecord,
  AuditRecord,
  AuditResult,
  AuthStorePort,
  NodeCredentialState,
  SessionRecord,
  UserRecord,
} from "../../domain/auth/ports.ts"
import type { Role } from "../../domain/auth/roles.ts"
import { batched } from "./batched.ts"
import { str } from "./columns.ts"
import type { Dialect } from "./migrations.ts"
import { HotPathBusy, hotPathOf, writingNodes } from "./sqlite-hot-path.ts"

type Row = Record<string, unknown>

const toUser = (r: Row): UserRecord => ({
  id: String(r.id),
  username: String(r.username),
  passwordHash: String(r.password_hash),
  role: String(r.role) as Role,
  createdAt: String(r.created_at),
  passwordChangedAt: String(r.password_changed_at),
})

const toSession = (r: Row): SessionRecord => ({
  jti: String(r.jti),
  userId: String(r.user_id),
  issuedAt: String(r.issued_at),
  expiresAt: String(r.expires_at),
  revokedAt: str(r.revoked_at),
  source: str(r.source),
  startedAt: String(r.started_at ?? r.issued_at),
})

/** What authentication needs of a node's row (its credential's age, a rotation asked for). */
const credentialState = (r: Row): NodeCredentialState => ({
  nodeId: String(r.id),
  issuedAt: String(r.credential_issued_at ?? r.enrolled_at),
  rotationRequested: r.rotation_requested_at !== null && r.rotation_requested_at !== undefined,
})

const toToken = (r: Row): ApiTokenRecord => ({
  id: String(r.id),
  name: String(r.name),
  role: String(r.role) as Role,
  createdAt: String(r.created_at),
  createdBy: str(r.created_by),
  expiresAt: str(r.expires_at),
  revokedAt: str(r.revoked_at),
})

const parsed = (v: unknown): unknown => (v ? (JSON.parse(String(v)) as unknown) : null)
const detailOf = (r: Row): unknown => {
  const detail = parsed(r.detail)
  const outcome = parsed(r.outcome)
  if (outcome === null) return detail
  return detail !== null && typeof detail === "object" ? { ...detail, outcome } : { outcome }
}

const toAudit = (r: Row): AuditRecord => ({
  id: Number(r.id),
  at: String(r.at),
  requestId: String(r.request_id),
  actor: String(r.actor),
  role: str(r.role),
  source: str(r.source),
  method: String(r.method),
  path: String(r.path),
  action: String(r.action),
  nodeId: str(r.node_id),
  command: str(r.command),
  status: Number(r.status),
  result: String(r.result) as AuditResult,
  detail: detailOf(r),
})
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v))

export interface AuthStoreOptions {
  /** Told when a rotated credential's first use retires the node's old one (its open polls end then). */
  credentialRetired?: (nodeId: string) => void
}

export function createAuthStore(db: SQL, _dialect: Dialect, opts: AuthStoreOptions = {}): AuthStorePort {
  const hot = hotPathOf(db)
  const credentialOf = batched(async (hashes: string[]): Promise<(Row | undefined)[]> => {
    // On SQLite a statement prepared once, in one read transaction (sqlite-hot-path.ts); on
    // PostgreSQL, or when that finds the database busy, one SELECT for the batch.
    if (hot) {
      try {
        return hot.credentials(hashes)
      } catch (error) {
        if (!(error instanceof HotPathBusy)) throw error
      }
    }
    const rows: Row[] = await db`
      SELECT id, enrolled_at, credential_issued_at, rotation_requested_at, credential_hash FROM nodes
      WHERE credential_hash IN ${db([...new Set(hashes)])}`
    const byHash = new Map(rows.map((r) => [String(r.credential_hash), r]))
    return hashes.map((h) => byHash.get(h))
  })
  return {
    async createUser(u) {
      const rows: Row[] = await db`
        INSERT INTO users (id, username, password_hash, role, created_at, password_changed_at)
        VALUES (${u.id}, ${u.username}, ${u.passwordHash}, ${u.role}, ${u.createdAt}, ${u.passwordChangedAt})
        ON CONFLICT (username) DO NOTHING RETURNING id`
      return rows.length > 0
    },
    async userByName(username) {
      const rows: Row[] = await db`SELECT * FROM users WHERE username = ${username} AND deleted_at IS NULL`
      return rows[0] ? toUser(rows[0]) : null
    },
    async userById(id) {
      const rows: Row[] = await db`SELECT * FROM users WHERE id = ${id} AND deleted_at IS NULL`
      return rows[0] ? toUser(rows[0]) : null
    },
    async listUsers() {
      const rows: Row[] = await db`SELECT * FROM users WHERE deleted_at IS NULL ORDER BY username`
      return rows.map(toUser)
    },
    async deleteUser(id, now) {
      // The row stays (renamed) so audit entries and sessions keep pointing at someone; the name is freed.
      await db`UPDATE users SET deleted_at = ${now}, username = ${`${id}:deleted`} WHERE id = ${id}`
    },
    async setPassword(id, hash, now) {
      await db`UPDATE users SET password_hash = ${hash}, password_changed_at = ${now} WHERE id = ${id}`
    },
    async setRole(id, role) {
      await db`UPDATE users SET role = ${role} WHERE id = ${id}`
    },

    async createSession(s) {
      await db`
        INSERT INTO auth_sessions (jti, user_id, issued_at, expires_at, source, user_agent, started_at)
        VALUES (${s.jti}, ${s.userId}, ${s.issuedAt}, ${s.expiresAt}, ${s.source}, ${s.userAgent}, ${s.startedAt})`
    },
    async sessionWithUser(jti) {
      const rows: Row[] = await db`SELECT * FROM auth_sessions WHERE jti = ${jti}`
      if (!rows[0]) return null
      const users: Row[] = await db`SELECT * FROM users WHERE id = ${String(rows[0].user_id)} AND deleted_at IS NULL`
      return users[0] ? { session: toSession(rows[0]), user: toUser(users[0]) } : null
    },
    async revokeSession(jti, now, replacedBy) {
      const rows: Row[] = await db`
        UPDATE auth_sessions SET revoked_at = ${now}, replaced_by = ${replacedBy ?? null}
        WHERE jti = ${jti} AND revoked_at IS NULL RETURNING jti`
      return rows.length > 0
    },
    async revokeSessionsOf(userId, now) {
      const rows: Row[] = await db`
        UPDATE auth_sessions SET revoked_at = ${now} WHERE user_id = ${userId} AND revoked_at IS NULL RETURNING jti`
      return rows.length
    },
    async activeSessions(userId, now) {
      const rows: Row[] = await db`
        SELECT * FROM auth_sessions WHERE user_id = ${userId} AND revoked_at IS NULL AND expires_at > ${now}
        ORDER BY issued_at`
      return rows.map(toSession)
    },

    async createApiToken(t) {
      await db`
        INSERT INTO api_tokens (id, name, token_hash, role, created_at, created_by, expires_at)
        VALUES (${t.id}, ${t.name}, ${t.tokenHash}, ${t.role}, ${t.createdAt}, ${t.createdBy}, ${t.expiresAt})`
    },
    async apiTokenByHash(hash) {
      const rows: Row[] = await db`SELECT * FROM api_tokens WHERE token_hash = ${hash}`
      return rows[0] ? toToken(rows[0]) : null
    },
    async listApiTokens() {
      const rows: Row[] = await db`SELECT * FROM api_tokens ORDER BY created_at, id`
      return rows.map(toToken)
    },
    async revokeApiToken(id, now) {
      const rows: Row[] =
        await db`UPDATE api_tokens SET revoked_at = ${now} WHERE id = ${id} AND revoked_at IS NULL RETURNING id`
      return rows.length > 0
    },
    async revokeApiTokensOf(createdBy, now, roles) {
      if (roles?.length === 0) return 0
      const rows: Row[] = roles
        ? await db`
          UPDATE api_tokens SET revoked_at = ${now}
          WHERE created_by = ${createdBy} AND revoked_at IS NULL AND role IN ${db(roles)} RETURNING id`
        : await db`
          UPDATE api_tokens SET revoked_at = ${now} WHERE created_by = ${createdBy} AND revoked_at IS NULL RETURNING id`
      return rows.length
    },

    async nodeForCredential(hash, now) {
      // Every agent request authenticates: the lookups of one turn of the event loop go together
      // (batched.ts), read after any revocation committed before them, so a revoked credential still
      // fails at once.
      // A known row needs no database read, so it need not wait for the turn's batch either.
      let r = hot?.knownCredential(hash) ?? (await credentialOf(hash))
      if (!r) {
        // First use of a rotated credential confirms the agent stored it: only now does the old one stop.
        const promoted: Row[] = await db`
          UPDATE nodes SET credential_hash = pending_credential_hash, pending_credential_hash = NULL,
            rotation_requested_at = NULL, credential_issued_at = ${now}
          WHERE pending_credential_hash = ${hash} AND credential_hash IS NOT NULL RETURNING id`
        if (!promoted[0]) return null
        hot?.forget([String(promoted[0].id)])
        opts.credentialRetired?.(String(promoted[0].id))
        r = (
          (await db`
          SELECT id, enrolled_at, credential_issued_at, rotation_requested_at FROM nodes
          WHERE credential_hash = ${hash}`) as Row[]
        )[0]
      }
      return r ? credentialState(r) : null
    },
    knownNodeCredential(hash) {
      const r = hot?.knownCredential(hash)
      return r ? credentialState(r) : undefined
    },
    async requestRotation(nodeId, now) {
      return writingNodes(hot, [nodeId], async () => {
        const rows: Row[] = await db`
          UPDATE nodes SET rotation_requested_at = ${now} WHERE id = ${nodeId} AND credential_hash IS NOT NULL RETURNING id`
        return rows.length > 0
      })
    },
    async setPendingCredential(nodeId, hash, callerHash) {
      const rows: Row[] = await db`
        UPDATE nodes SET pending_credential_hash = ${hash}
        WHERE id = ${nodeId} AND credential_hash = ${callerHash} RETURNING id`
      return rows.length > 0
    },
    async joinTokenKnown(hash) {
      const rows: Row[] = await db`SELECT 1 AS known FROM join_tokens WHERE token_hash = ${hash}`
      return rows.length > 0
    },
    async revokeNode(nodeId, now) {
      // What the hot path knows of the node's row stops standing for it before the revocation commits.
      return writingNodes(hot, [nodeId], () =>
        db.begin(async (tx) => {
          const rows: Row[] = await tx`
            UPDATE nodes SET credential_hash = NULL, pending_credential_hash = NULL, rotation_requested_at = NULL,
              revoked_at = ${now}
            WHERE id = ${nodeId} RETURNING id`
          await tx`UPDATE join_tokens SET used_at = ${now}, used_by = ${"(revoked)"} WHERE node_id = ${nodeId} AND used_at IS NULL`
          return rows.length > 0
        }),
      )
    },

    async removeNode(nodeId, now) {
      return writingNodes(hot, [nodeId], () =>
        db.begin(async (tx) => {
          const rows: Row[] = await tx`
            UPDATE nodes SET credential_hash = NULL, pending_credential_hash = NULL, rotation_requested_at = NULL,
              revoked_at = COALESCE(revoked_at, ${now}), removed_at = ${now}, desired_path = NULL, desired_set_at = NULL
            WHERE id = ${nodeId} AND removed_at IS NULL RETURNING id`
          if (rows.length === 0) return null
          await tx`UPDATE join_tokens SET used_at = ${now}, used_by = ${"(revoked)"} WHERE node_id = ${nodeId} AND used_at IS NULL`
          // What was queued for the machine is not handed to the next one enrolled under its name.
          const closed: Row[] = await tx`
            UPDATE commands SET acked_at = ${now}, success = 0, output = ${"not delivered: the node was removed from the fleet"}
            WHERE node_id = ${nodeId} AND acked_at IS NULL RETURNING id`
          return closed.map((r) => String(r.id))
        }),
      )
    },

    async appendAudit(e) {
      const rows: Row[] = await db`
        INSERT INTO audit_log (at, request_id, actor, role, source, method, path, action, node_id, command, status, result, detail)
        VALUES (${e.at}, ${e.requestId}, ${e.actor}, ${e.role}, ${e.source}, ${e.method}, ${e.path}, ${e.action},
          ${e.nodeId}, ${e.command}, ${e.status}, ${e.result}, ${json(e.detail)})
        RETURNING id`
      return Number(rows[0]?.id)
    },
    async appendAuditOutcome(id, o) {
      await db`
        INSERT INTO audit_outcomes (audit_id, at, status, result, node_id, detail)
        VALUES (${id}, ${o.at}, ${o.status}, ${o.result}, ${o.nodeId}, ${json(o.detail)})`
    },
    async listAudit(q) {
      // A row and, when its action has reported, its outcome: one entry per action, as it ended.
      const rows: Row[] = await db`
        SELECT a.id, a.at, a.request_id, a.actor, a.role, a.source, a.method, a.path, a.action, a.command, a.detail,
          COALESCE(o.node_id, a.node_id) AS node_id, COALESCE(o.status, a.status) AS status,
          COALESCE(o.result, a.result) AS result, o.detail AS outcome
        FROM audit_log a LEFT JOIN audit_outcomes o ON o.audit_id = a.id
        WHERE a.id > ${q.afterId ?? 0}
          ${q.actor === undefined ? db`` : db`AND a.actor = ${q.actor}`}
          ${q.nodeId === undefined ? db`` : db`AND COALESCE(o.node_id, a.node_id) = ${q.nodeId}`}
          ${q.action === undefined ? db`` : db`AND a.action = ${q.action}`}
          ${q.result === undefined ? db`` : db`AND COALESCE(o.result, a.result) = ${q.result}`}
          ${q.since === undefined ? db`` : db`AND a.at >= ${q.since}`}
          ${q.until === undefined ? db`` : db`AND a.at < ${q.until}`}
        ORDER BY a.id ${q.tail ? db`DESC` : db``} LIMIT ${q.limit}`
      if (q.tail) rows.reverse()
      return rows.map(toAudit)
    },
  }
}
