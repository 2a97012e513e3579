// The trust layer's schema, appended to MIGRATIONS after the fleet's own: users, login
// sessions by JWT id, API tokens' owner and expiry, node credential rotation and revocation, and the
// audit log, which the database itself keeps append-only (a trigger on SQLite, rules on PostgreSQL).
import type { Dialect, Migration } from "./migrations.ts"

const serial = (d: Dialect) => (d === "postgres" ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT")

const appendOnly = (d: Dialect, table = "audit_log") =>
  d === "postgres"
    ? [
        // An error, as on SQLite, not a rule that silently does nothing: tampering must be seen.
        `CREATE FUNCTION ${table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION '${table} is append-only'; END $$`,
        `CREATE TRIGGER ${table}_no_change BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_append_only()`,
        `CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${table}_append_only()`,
      ]
    : [
        `CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`,
        `CREATE TRIGGER ${table}_no_delete BEFORE DELETE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`,
      ]

export const AUTH_MIGRATIONS: Migration[] = [
  {
    version: 3,
    name: "users, sessions, api token owners, node credential rotation, audit log",
    statements: (d) => [
      `CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        password_changed_at TEXT NOT NULL,
        deleted_at TEXT
      )`,
      `CREATE TABLE auth_sessions (
        jti TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT,
        replaced_by TEXT,
        source TEXT,
        user_agent TEXT
      )`,
      "CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id, expires_at)",
      "ALTER TABLE api_tokens ADD COLUMN created_by TEXT",
      "ALTER TABLE api_tokens ADD COLUMN expires_at TEXT",
      "ALTER TABLE nodes ADD COLUMN pending_credential_hash TEXT",
      "ALTER TABLE nodes ADD COLUMN credential_issued_at TEXT",
      "ALTER TABLE nodes ADD COLUMN rotation_requested_at TEXT",
      "ALTER TABLE nodes ADD COLUMN revoked_at TEXT",
      "CREATE UNIQUE INDEX nodes_pending_credential ON nodes (pending_credential_hash)",
      `CREATE TABLE audit_log (
        id ${serial(d)},
        at TEXT NOT NULL,
        request_id TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT,
        source TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        action TEXT NOT NULL,
        node_id TEXT,
        command TEXT,
        status INTEGER NOT NULL,
        result TEXT NOT NULL,
        detail TEXT
      )`,
      "CREATE INDEX audit_by_actor ON audit_log (actor, id)",
      "CREATE INDEX audit_by_node ON audit_log (node_id, id)",
      ...appendOnly(d),
    ],
  },
  {
    version: 6,
    name: "audit rows written before their action, outcomes appended; absolute session lifetime",
    statements: (d) => [
      // An action's audit row is written before it runs (result `started`); what it came to is appended
      // here once it has, so neither table is ever updated and a crash mid-action still leaves the row.
      `CREATE TABLE audit_outcomes (
        audit_id ${d === "postgres" ? "BIGINT" : "INTEGER"} PRIMARY KEY,
        at TEXT NOT NULL,
        status INTEGER NOT NULL,
        result TEXT NOT NULL,
        node_id TEXT,
        detail TEXT
      )`,
      ...appendOnly(d, "audit_outcomes"),
      // When the chain of refreshed sessions began: the login. Older rows fall back to issued_at.
      "ALTER TABLE auth_sessions ADD COLUMN started_at TEXT",
    ],
  },
]
