// The trust layer's port and records: users, login sessions (one row per issued JWT, by its jti),
// named API tokens, node credentials (current, pending rotation, revoked) and the append-only audit
// log. Secrets are stored only as hashes: argon2id for passwords, SHA-256 for bearer tokens.
import type { Role } from "./roles.ts"

export interface UserRecord {
  id: string
  username: string
  passwordHash: string
  role: Role
  createdAt: string
  passwordChangedAt: string
}

export interface SessionRecord {
  jti: string
  userId: string
  issuedAt: string
  expiresAt: string
  revokedAt: string | null
  source: string | null
  /** When the login that began this chain of refreshed sessions happened. */
  startedAt: string
}

export interface ApiTokenRecord {
  id: string
  name: string
  role: Role
  createdAt: string
  createdBy: string | null
  expiresAt: string | null
  revokedAt: string | null
}

export interface NodeCredentialState {
  nodeId: string
  /** When the current credential was issued (rotation or enrolment). */
  issuedAt: string
  rotationRequested: boolean
}

export interface AuditRecord {
  id: number
  at: string
  requestId: string
  actor: string
  role: string | null
  source: string | null
  method: string
  path: string
  action: string
  nodeId: string | null
  command: string | null
  status: number
  result: AuditResult
  detail: unknown
}
/** `started`: the row was written before its action, which has not (yet) reported what it came to. */
export type AuditResult = "ok" | "denied" | "rate-limited" | "failed" | "started"
export type NewAuditRecord = Omit<AuditRecord, "id">

/** What a `started` row's action came to, appended once it has run. */
export interface AuditOutcome {
  at: string
  status: number
  result: AuditResult
  /** The node it turned out to be about, when the row did not know (a command's session). */
  nodeId: string | null
  detail: unknown
}

export interface AuditQuery {
  actor?: string
  nodeId?: string
  action?: string
  result?: AuditResult
  since?: string
  until?: string
  afterId?: number
  limit: number
  /** The last `limit` rows that match rather than the first (answered oldest first all the same). */
  tail?: boolean
}

export interface AuthStorePort {
  createUser(user: UserRecord): Promise<boolean>
  userByName(username: string): Promise<UserRecord | null>
  userById(id: string): Promise<UserRecord | null>
  listUsers(): Promise<UserRecord[]>
  deleteUser(id: string, now: string): Promise<void>
  setPassword(id: string, passwordHash: string, now: string): Promise<void>
  setRole(id: string, role: Role): Promise<void>

  createSession(session: SessionRecord & { userAgent: string | null }): Promise<void>
  /** The session and its user's current role, when the session exists (revoked or not). */
  sessionWithUser(jti: string): Promise<{ session: SessionRecord; user: UserRecord } | null>
  /** Revokes one session; false when it was unknown or already revoked. */
  revokeSession(jti: string, now: string, replacedBy?: string): Promise<boolean>
  revokeSessionsOf(userId: string, now: string): Promise<number>
  activeSessions(userId: string, now: string): Promise<SessionRecord[]>

  createApiToken(token: ApiTokenRecord & { tokenHash: string }): Promise<void>
  apiTokenByHash(tokenHash: string): Promise<ApiTokenRecord | null>
  listApiTokens(): Promise<ApiTokenRecord[]>
  revokeApiToken(id: string, now: string): Promise<boolean>
  /** Revokes the tokens `createdBy` made (only those of `roles`, when given); returns how many. */
  revokeApiTokensOf(createdBy: string, now: string, roles?: Role[]): Promise<number>

  /** The node whose current credential hashes to `hash`; a matching pending credential is promoted first. */
  nodeForCredential(hash: string, now: string): Promise<NodeCredentialState | null>
  /**
   * The node whose current credential hashes to `hash` when the store knows it without a read (the
   * SQLite hot path's kept rows), or undefined: then nodeForCredential decides. A store that keeps
   * nothing has none. Never a different answer from nodeForCredential's, only a quicker one.
   */
  knownNodeCredential?(hash: string): NodeCredentialState | undefined
  requestRotation(nodeId: string, now: string): Promise<boolean>
  /**
   * Stores a pending credential; the current one keeps working until the pending one is first used.
   * Only while `callerHash` is still the node's credential: false when it was revoked (or rotated)
   * after the caller authenticated, so a request in flight cannot outlive a revocation.
   */
  setPendingCredential(nodeId: string, hash: string, callerHash: string): Promise<boolean>
  /** Whether a join token with this hash was ever issued. */
  joinTokenKnown(hash: string): Promise<boolean>
  /** Forgets every credential of the node and any unused join token bound to it. */
  revokeNode(nodeId: string, now: string): Promise<boolean>
  /**
   * Takes the node out of the fleet: revoked, its desired closure and undelivered commands dropped,
   * left out of every read of nodes until a machine enrols under its name again. The ids of the
   * commands it closed unanswered, or null when there is no such node.
   */
  removeNode(nodeId: string, now: string): Promise<string[] | null>

  /** Appends an entry and returns its id; throws when it cannot be stored. */
  appendAudit(entry: NewAuditRecord): Promise<number>
  appendAuditOutcome(auditId: number, outcome: AuditOutcome): Promise<void>
  listAudit(query: AuditQuery): Promise<AuditRecord[]>
}
