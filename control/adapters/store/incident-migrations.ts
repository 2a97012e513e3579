// The incident tables: incidents (at most one open per node and problem, which a partial unique index
// enforces even across replicas), their timelines, the outbox of notifications and ticket changes
// (one row per incident, step and channel: a step is enqueued once, whatever retries or restarts
// follow), and the watches that wait for a silence or an unhealed drift to last long enough.
// `reported_by` names the principal whose deployment records alone an incident rests on (null: the
// control plane saw the problem itself), so a record can neither resolve nor rewrite another's.
import type { Dialect, Migration } from "./migrations.ts"

const serial = (d: Dialect) => (d === "postgres" ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT")

export const INCIDENT_MIGRATIONS: Migration[] = [
  {
    version: 10,
    name: "incidents, their timelines and the notification outbox",
    statements: (d) => [
      `CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        problem TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL,
        title TEXT NOT NULL,
        message TEXT NOT NULL,
        closures TEXT NOT NULL,
        occurrences INTEGER NOT NULL DEFAULT 1,
        updates INTEGER NOT NULL DEFAULT 0,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        noted_at TEXT NOT NULL,
        resolved_at TEXT,
        ticket_id TEXT,
        ticket_label TEXT
      )`,
      "CREATE UNIQUE INDEX incidents_open ON incidents (node_id, problem) WHERE status = 'open'",
      "CREATE INDEX incidents_by_time ON incidents (opened_at)",
      "CREATE INDEX incidents_by_node ON incidents (node_id, opened_at)",
      `CREATE TABLE incident_timeline (
        id ${serial(d)},
        incident_id TEXT NOT NULL,
        at TEXT NOT NULL,
        step TEXT NOT NULL,
        message TEXT NOT NULL
      )`,
      "CREATE INDEX incident_timeline_by_incident ON incident_timeline (incident_id, id)",
      `CREATE TABLE incident_outbox (
        id ${serial(d)},
        incident_id TEXT NOT NULL,
        step TEXT NOT NULL,
        channel TEXT NOT NULL,
        notice TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms BIGINT NOT NULL,
        claimed_until_ms BIGINT,
        last_error TEXT,
        external_id TEXT,
        created_at TEXT NOT NULL,
        delivered_at TEXT,
        UNIQUE (incident_id, step, channel)
      )`,
      "CREATE INDEX incident_outbox_due ON incident_outbox (status, next_attempt_ms, id)",
      "CREATE INDEX incident_outbox_by_incident ON incident_outbox (incident_id, channel, id)",
      `CREATE TABLE incident_watches (
        node_id TEXT NOT NULL,
        problem TEXT NOT NULL,
        since_ms BIGINT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (node_id, problem)
      )`,
    ],
  },
  {
    version: 15,
    name: "incidents name the principal whose deployment records opened them",
    statements: () => [
      "ALTER TABLE incidents ADD COLUMN reported_by TEXT",
      "CREATE INDEX incidents_by_reporter ON incidents (reported_by, opened_at)",
    ],
  },
]
