// The configuration's schema: every section and field Chimera reads, each with its default and the
// message a wrong value gets ("expected an integer from 1 to 65535"). Every field has a default, so an
// empty file is valid, and every table is strict, so an unknown key is an error rather than a typo that
// silently falls back to the default. The [notifications] and [itsm] sections are in config-channels.ts;
// config.ts reads the layers (file, environment, flags) and parses them with this schema.
import { z } from "zod"
import { ModelName } from "../protocol/ai.ts"
import { ItsmSection, NotificationsSection } from "./config-channels.ts"
import { Problem, Severity } from "./domain/incident-model.ts"

const _int = (expected: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
  const error = { error: expected }
  return z.number(error).int(error).min(min, error).max(max, error)
}
const _port = () => _int("expected an integer from 1 to 65535", 1, 65535)
const _seconds = () => _int("expected a whole number of seconds, at least 1", 1)
const _string = () => z.string({ error: "expected a string" })
const _bool = () => z.boolean({ error: "expected true or false" })
const _url = () =>
  _string().refine((v) => v === "" || /^https?:\/\/[^\s/]+/.test(v), { error: 'expected an http(s) URL or ""' })
const _severity = () => z.enum(Severity.options, { error: `expected one of ${Severity.options.join(", ")}` })
const _isTimeZone = (zone: string) => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone })
    return true
  } catch {
    return false
  }
}
// Every field of a section has a default, so `{}` is a valid input; the generic shape hides that from tsc.
const _section = <T extends z.core.$ZodLooseShape>(shape: T) =>
  z
    .object(shape, { error: "expected a table (a [section] of settings)" })
    .strict()
    .prefault({} as never)

export const LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const

export const ChimeraConfig = z
  .object({
    nix: _section({ config_path: _string().default("default.nix") }),
    fleet: _section({
      targets: z.array(_string(), { error: "expected a list of strings" }).default([]),
      session_name: _string().default("chimera-deploy"),
      // Named nodes for `--targets NAME` and `--targets @tag` (control/adapters/ssh/inventory.ts).
      nodes: z
        .record(
          _string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
            error: "expected a node name of letters, digits, . _ -",
          }),
          z
            .object(
              {
                address: _string().min(1, { error: "expected [user@]host[:port]" }),
                tags: z.array(_string(), { error: "expected a list of strings" }).default([]),
              },
              { error: "expected a table with address and tags" },
            )
            .strict(),
          { error: "expected a table of [fleet.nodes.NAME] tables" },
        )
        .default({}),
    }),
    watch: _section({
      interval_seconds: _seconds().default(10),
      session_name: _string().default("chimera-watch"),
    }),
    agent: _section({
      node_id: _string().default(""),
      heartbeat_interval: _seconds().default(5),
      drift_check_interval: _seconds().default(30),
      auto_heal: _bool().default(true),
      spool_max_bytes: _int("expected a whole number of bytes, at least 1048576", 1_048_576).default(16 * 1024 * 1024),
    }),
    web: _section({ host: _string().default("127.0.0.1"), port: _port().default(8080) }),
    mcp: _section({
      host: _string().default("localhost"),
      port: _port().default(8765),
      // Names a request's Host may give besides the server's own (a reverse proxy's, a DNS name).
      allowed_hosts: z.array(_string(), { error: "expected a list of host names" }).default([]),
    }),
    telemetry: _section({ endpoint: _string().default(""), insecure: _bool().default(false) }),
    itsm: ItsmSection,
    notifications: NotificationsSection,
    // Incidents opened from fleet events: how long a silence or an unhealed drift may last first,
    // which problems page, when only critical ones do (quiet hours, "HH:MM-HH:MM" in quiet_hours_timezone),
    // the least severity each channel hears of, how often an open incident's ticket gets a note, and
    // the dashboard link in messages ("" links to this control plane's own address).
    incidents: _section({
      unreachable_after_seconds: _seconds().default(120),
      drift_unhealed_after_seconds: _seconds().default(600),
      page: z
        .array(Problem, { error: `expected a list of problems: ${Problem.options.join(", ")}` })
        .default(["heal-failed", "unreachable", "missing-closure"]),
      quiet_hours: _string()
        .regex(/^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, {
          error: 'expected "HH:MM-HH:MM" (24-hour, e.g. "22:00-07:00") or "" (none)',
        })
        .default(""),
      quiet_hours_timezone: _string()
        .refine(_isTimeZone, { error: 'expected an IANA time zone such as "UTC" or "Europe/Paris"' })
        .default("UTC"),
      slack_min_severity: _severity().default("info"),
      email_min_severity: _severity().default("warning"),
      pagerduty_min_severity: _severity().default("warning"),
      ticket_min_severity: _severity().default("warning"),
      update_every_seconds: _seconds().default(900),
      dashboard_url: _url().default(""),
    }),
    // How long a session token lasts and how often node credentials are rotated.
    auth: _section({
      jwt_ttl_seconds: _int("expected a whole number of seconds from 60 to 86400", 60, 86_400).default(3600),
      // However often a session is refreshed, its login ends this long after the password was given.
      session_max_seconds: _int("expected a whole number of seconds from 60 to 2592000", 60, 2_592_000).default(43_200),
      node_credential_rotation_days: _int("expected a whole number of days (0: only on request)", 0, 3650).default(30),
    }),
    // How long the control plane keeps what agents answered to commands (relayed output, activation
    // results) once they are answered: 0 keeps them forever. The audit log is never pruned.
    retention: _section({
      command_days: _int("expected a whole number of days (0: keep forever)", 0, 3650).default(30),
      // Fleet events (drift, heals, reachability) older than this are pruned; 0 keeps them forever.
      event_days: _int("expected a whole number of days (0: keep forever)", 0, 3650).default(90),
      // Deployment records (each with every target's log, up to 1 MiB as a CLI reports it) finished
      // longer ago than this are pruned; 0 keeps them forever.
      deployment_days: _int("expected a whole number of days (0: keep forever)", 0, 3650).default(365),
    }),
    // Bounds that keep one caller from starving the rest: live event streams (per user or API token,
    // and in total) and what each node may report per window (bytes of request bodies, number of
    // reports); past them a 429 says when to come back.
    limits: _section({
      event_streams_per_user: _int("expected a whole number of streams, at least 1", 1).default(16),
      event_streams: _int("expected a whole number of streams, at least 1", 1).default(1000),
      node_report_bytes: _int("expected a whole number of bytes, at least 65536", 65_536).default(4 * 1024 * 1024),
      node_reports: _int("expected a whole number of reports, at least 1", 1).default(600),
      node_report_window_seconds: _seconds().default(60),
      node_report_bytes_per_day: _int("expected a whole number of bytes, at least 1048576", 1_048_576).default(
        256 * 1024 * 1024,
      ),
    }),
    // Requests allowed per window: `agent` counts per node, `login` per source address.
    rate_limits: _section({
      window_seconds: _seconds().default(60),
      api: _int("expected a whole number of requests, at least 1", 1).default(300),
      agent: _int("expected a whole number of requests, at least 1", 1).default(1200),
      login: _int("expected a whole number of attempts, at least 1", 1).default(10),
      enroll: _int("expected a whole number of enrolments, at least 1", 1).default(20),
      sessions: _int("expected a whole number of sessions, at least 1", 1).default(10),
      commands: _int("expected a whole number of commands, at least 1", 1).default(60),
      websocket: _int("expected a whole number of messages, at least 1", 1).default(100),
      chat: _int("expected a whole number of chat turns, at least 1", 1).default(30),
      // At least a full report's worth (1,000 rows), or the largest could never be recorded.
      records: _int("expected a whole number of audit rows, at least 1000", 1000).default(2000),
    }),
    // How the control plane itself reaches nodes over SSH for the command API; the CLI's
    // --identity/--known-hosts flags are the same settings for commands run from a workstation.
    ssh: _section({
      identity_file: _string().default(""),
      known_hosts_file: _string().default(""),
      trust_new_hosts: _bool().default(false),
    }),
    // The AI chat's model. No provider: the chat routes answer 503 and say how to set one. The key may
    // come as api_key, from api_key_file (read at start) or as CHIMERA_AI_API_KEY; it is never shown.
    // A chat runs on `model` or on one `models` adds, never on a name its user made up: the key and its
    // bill are the admin's, and a proxy behind base_url may route any name it is given.
    ai: _section({
      provider: z
        .enum(["", "anthropic", "openai"], { error: 'expected "anthropic", "openai" or "" (none)' })
        .default(""),
      model: _string().default(""),
      models: z.array(ModelName, { error: "expected a list of model names" }).default([]),
      base_url: _url().default(""),
      api_key: _string().default(""),
      api_key_file: _string().default(""),
      timeout_seconds: _int("expected a whole number of seconds from 1 to 3600", 1, 3600).default(120),
      question_ttl_seconds: _int("expected a whole number of seconds from 10 to 86400", 10, 86_400).default(300),
      max_context_tokens: _int("expected a whole number of tokens from 2000 to 10000000", 2000, 10_000_000).default(
        100_000,
      ),
      turn_lease_seconds: _int("expected a whole number of seconds from 3 to 600", 3, 600).default(30),
    }),
    log_level: _string()
      .toUpperCase()
      .pipe(z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")} (any case)` }))
      .default("WARNING"),
  })
  .strict()
export type ChimeraConfig = z.output<typeof ChimeraConfig>
