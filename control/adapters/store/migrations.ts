// Versioned schema migrations, applied in order and recorded in `schema_migrations`. Each is written
// once for both dialects Bun.SQL speaks here: SQLite (the default) and PostgreSQL (several replicas).
// Never edit a released migration; add the next one.
import { AUTH_MIGRATIONS } from "./auth-migrations.ts"
import { CHAT_MIGRATIONS } from "./chat-store.ts"
import { COMMAND_MIGRATIONS } from "./command-store.ts"
import { INCIDENT_MIGRATIONS } from "./incident-migrations.ts"
import { TURN_EVENT_MIGRATIONS } from "./turn-event-store.ts"

export type Dialect = "sqlite" | "postgres"

export interface Migration {
  version: number
  name: string
  statements: (dialect: Dialect) => string[]
}

const serial = (d: Dialect) => (d === "postgres" ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT")

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "nodes, events, tokens, commands",
    statements: (d) => [
      `CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        hostname TEXT NOT NULL DEFAULT '',
        credential_hash TEXT UNIQUE,
        epoch INTEGER NOT NULL DEFAULT 1,
        enrolled_at TEXT NOT NULL,
        agent_version TEXT,
        desired_path TEXT,
        desired_set_at TEXT,
        profile_path TEXT,
        current_path TEXT,
        booted_path TEXT,
        agent_desired_path TEXT,
        phase TEXT,
        health TEXT,
        heartbeat_interval REAL NOT NULL DEFAULT 5,
        last_heartbeat TEXT,
        last_heartbeat_ms BIGINT,
        unreachable INTEGER NOT NULL DEFAULT 0,
        acked_seq BIGINT NOT NULL DEFAULT 0
      )`,
      `CREATE TABLE events (
        id ${serial(d)},
        type TEXT NOT NULL,
        node_id TEXT,
        at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        data TEXT NOT NULL,
        agent_epoch INTEGER,
        agent_seq BIGINT,
        UNIQUE (node_id, agent_epoch, agent_seq)
      )`,
      "CREATE INDEX events_by_node ON events (node_id, id)",
      "CREATE INDEX events_by_type ON events (type, id)",
      `CREATE TABLE join_tokens (
        token_hash TEXT PRIMARY KEY,
        node_id TEXT,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        used_by TEXT
      )`,
      `CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
      )`,
      `CREATE TABLE commands (
        id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        delivered_at TEXT,
        acked_at TEXT,
        success INTEGER,
        output TEXT
      )`,
      "CREATE INDEX commands_pending ON commands (node_id, acked_at, created_at)",
    ],
  },
  {
    version: 2,
    name: "deployments",
    statements: () => [
      `CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        status TEXT NOT NULL,
        closure TEXT NOT NULL,
        record TEXT NOT NULL
      )`,
      "CREATE INDEX deployments_by_time ON deployments (created_at)",
    ],
  },
  // The trust layer's migrations (version 3 and up) live beside this file.
  ...AUTH_MIGRATIONS,
  // Command sessions and history (the command API on fleet nodes), version 4.
  ...COMMAND_MIGRATIONS,
  {
    version: 5,
    name: "relayed command results",
    statements: () => [
      "ALTER TABLE commands ADD COLUMN exit_code INTEGER",
      "ALTER TABLE commands ADD COLUMN stderr TEXT",
      "ALTER TABLE commands ADD COLUMN timed_out INTEGER NOT NULL DEFAULT 0",
    ],
  },
  {
    version: 7,
    name: "events pruned by arrival; the health probe's row",
    statements: () => [
      "CREATE INDEX events_by_arrival ON events (received_at)",
      "CREATE TABLE health_probe (id INTEGER PRIMARY KEY, checked_at TEXT NOT NULL)",
    ],
  },
  {
    version: 8,
    name: "the signing keyring: every replica's public JWT key",
    statements: () => [
      "CREATE TABLE signing_keys (kid TEXT PRIMARY KEY, public_key TEXT NOT NULL, created_at TEXT NOT NULL)",
    ],
  },
  {
    version: 9,
    name: "failed logins per username, shared by replicas",
    statements: () => [
      "CREATE TABLE login_failures (username TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL)",
    ],
  },
  // Incidents, their timelines and the notification outbox, version 10; 15 names the principal whose
  // deployment records opened one. Migrations run in this list's order, each once by version: 15 runs
  // before 12-14 on a fresh database, which is safe while it needs only version 10's tables.
  ...INCIDENT_MIGRATIONS,
  // The AI chat's chats, messages and questions, version 12 (11 was never used); 13 lets a chat name an
  // incident by its UUID.
  ...CHAT_MIGRATIONS,
  {
    version: 14,
    name: "deployment records name the principal that reported them",
    // Null: the control plane ran the deploy, or its record predates this column; either way no
    // caller may write that id again.
    statements: () => ["ALTER TABLE deployments ADD COLUMN recorded_by TEXT"],
  },
  {
    version: 16,
    name: "nodes removed from the fleet",
    // The row stays (its report epoch too, so a machine enrolled again under the name never has its
    // reports taken for the old one's); every read of the fleet leaves it out.
    statements: () => ["ALTER TABLE nodes ADD COLUMN removed_at TEXT"],
  },
  ...TURN_EVENT_MIGRATIONS,
  {
    version: 20,
    name: "relayed commands carry their run and its cancel",
    // `run_id`: the relay that queued the command (one per POST /api/fleet/run), so a cancel through any
    // replica finds its commands; `cancelled_at`: when its caller cancelled it; `cancel_sent_at`: when
    // its agent was last told so (the long poll says it again after a minute without an ack).
    statements: () => [
      "ALTER TABLE commands ADD COLUMN run_id TEXT",
      "ALTER TABLE commands ADD COLUMN cancelled_at TEXT",
      "ALTER TABLE commands ADD COLUMN cancel_sent_at TEXT",
      "CREATE INDEX commands_by_run ON commands (run_id)",
    ],
  },
]

// Branches that each add a migration can pick the same number; the second would then fail at start on
// `schema_migrations`' key (or, worse, be taken as applied). Refuse that when the module loads.
const taken = new Map<number, string>()
for (const m of MIGRATIONS) {
  const other = taken.get(m.version)
  if (other !== undefined) throw new Error(`migrations "${other}" and "${m.name}" share version ${m.version}`)
  taken.set(m.version, m.name)
}
