import { describe, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { ConfigError, databaseUrl, dataDir, loadConfig, loadLayeredConfig } from "./config.ts"
import { ChimeraConfig } from "./config-schema.ts"

async function tomlFile(text: string): Promise<AsyncDisposable & { path: string }> {
  const dir = await mkdtemp(join(tmpdir(), "chimera-config-"))
  const path = join(dir, "chimera.toml")
  await writeFile(path, text)
  return { path, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) }
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe("E_CONFIG")
    return err as ConfigError
  }
  throw new Error("expected a ConfigError, but loading succeeded")
}

describe("defaults", () => {
  test("with no file, environment or flags, every field has its default", () => {
    expect(loadConfig({ env: {} })).toEqual({
      nix: { config_path: "default.nix" },
      fleet: { targets: [], session_name: "chimera-deploy", nodes: {} },
      watch: { interval_seconds: 10, session_name: "chimera-watch" },
      agent: {
        node_id: "",
        heartbeat_interval: 5,
        drift_check_interval: 30,
        auto_heal: true,
        spool_max_bytes: 16 * 1024 * 1024,
      },
      web: { host: "127.0.0.1", port: 8080 },
      mcp: { host: "localhost", port: 8765, allowed_hosts: [] },
      telemetry: { endpoint: "", insecure: false },
      itsm: {
        provider: "",
        url: "",
        username: "",
        api_key: "",
        api_key_file: "",
        project_key: "",
        issue_type: "Task",
        done_transition: "",
        close_code: "Solved (Permanently)",
        timeout_seconds: 10,
      },
      notifications: {
        slack_webhook_url: "",
        slack_webhook_url_file: "",
        pagerduty_api_key: "",
        pagerduty_api_key_file: "",
        pagerduty_url: "https://events.pagerduty.com/v2/enqueue",
        email_smtp_host: "",
        email_smtp_port: 587,
        email_from: "",
        email_to: "",
        email_username: "",
        email_password: "",
        email_password_file: "",
        email_starttls: true,
        email_ca_file: "",
        timeout_seconds: 10,
      },
      incidents: {
        unreachable_after_seconds: 120,
        drift_unhealed_after_seconds: 600,
        page: ["heal-failed", "unreachable", "missing-closure"],
        quiet_hours: "",
        quiet_hours_timezone: "UTC",
        slack_min_severity: "info",
        email_min_severity: "warning",
        pagerduty_min_severity: "warning",
        ticket_min_severity: "warning",
        update_every_seconds: 900,
        dashboard_url: "",
      },
      auth: { jwt_ttl_seconds: 3600, session_max_seconds: 43_200, node_credential_rotation_days: 30 },
      retention: { command_days: 30, event_days: 90, deployment_days: 365 },
      limits: {
        event_streams_per_user: 16,
        event_streams: 1000,
        node_report_bytes: 4 * 1024 * 1024,
        node_reports: 600,
        node_report_bytes_per_day: 256 * 1024 * 1024,
        node_report_window_seconds: 60,
      },
      rate_limits: {
        window_seconds: 60,
        api: 300,
        agent: 1200,
        login: 10,
        enroll: 20,
        sessions: 10,
        commands: 60,
        websocket: 100,
        chat: 30,
        records: 2000,
      },
      ssh: { identity_file: "", known_hosts_file: "", trust_new_hosts: false },
      ai: {
        provider: "",
        model: "",
        models: [],
        base_url: "",
        api_key: "",
        api_key_file: "",
        timeout_seconds: 120,
        question_ttl_seconds: 300,
        max_context_tokens: 100_000,
        turn_lease_seconds: 30,
      },
      log_level: "WARNING",
    })
  })

  test("the schema alone fills defaults for a partial section", () => {
    expect(ChimeraConfig.parse({ web: { port: 9000 } }).web).toEqual({ host: "127.0.0.1", port: 9000 })
  })
})

describe("sources", () => {
  test("reads the TOML file named by CHIMERA_CONFIG_FILE", async () => {
    await using file = await tomlFile(`
log_level = "info"
[fleet]
targets = ["web-1", "web-2"]
[agent]
node_id = "web-1"
auto_heal = false
[itsm]
provider = "jira"
url = "https://example.atlassian.net"
username = "ops@example.org"
api_key_file = "jira.token"
project_key = "OPS"
`)
    const config = loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } })
    expect(config.fleet.targets).toEqual(["web-1", "web-2"])
    expect(config.agent).toMatchObject({ node_id: "web-1", auto_heal: false, heartbeat_interval: 5 })
    expect(config.itsm.provider).toBe("jira")
    // A secret's file, like every path the file sets, is read from the file's directory.
    expect(config.itsm.api_key_file).toBe(join(dirname(file.path), "jira.token"))
    expect(config.log_level).toBe("INFO")
  })

  test("[fleet.nodes.NAME] tables name nodes with an address and tags (tags default to none)", async () => {
    await using file = await tomlFile(`
[fleet.nodes.web-1]
address = "root@10.0.0.1:2222"
tags = ["web", "eu"]
[fleet.nodes.db-1]
address = "10.0.0.9"
`)
    const config = loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } })
    expect(config.fleet.nodes).toEqual({
      "web-1": { address: "root@10.0.0.1:2222", tags: ["web", "eu"] },
      "db-1": { address: "10.0.0.9", tags: [] },
    })
  })

  test("a fleet node without an address, or with an unknown key, fails with its path", async () => {
    await using file = await tomlFile(`[fleet.nodes.web-1]\ntags = ["web"]\nadress = "10.0.0.1"\n`)
    const message = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } })).message
    expect(message).toContain("fleet.nodes.web-1.address")
    expect(message).toContain("fleet.nodes.web-1.adress: unknown setting")
  })

  test("environment variables override the file and are read as the field's type", async () => {
    await using file = await tomlFile(`[web]\nport = 9000\nhost = "0.0.0.0"\n`)
    const config = loadConfig({
      env: {
        CHIMERA_CONFIG_FILE: file.path,
        CHIMERA_WEB_PORT: "9100",
        CHIMERA_AGENT_AUTO_HEAL: "false",
        CHIMERA_TELEMETRY_INSECURE: "yes",
        CHIMERA_FLEET_TARGETS: "a.example, b.example,",
        CHIMERA_LOG_LEVEL: "debug",
        CHIMERA_DATA_DIR: "/var/lib/chimera",
        CHIMERA_TOKEN: "not-a-section",
      },
    })
    expect(config.web).toEqual({ host: "0.0.0.0", port: 9100 })
    expect(config.agent.auto_heal).toBe(false)
    expect(config.telemetry.insecure).toBe(true)
    expect(config.fleet.targets).toEqual(["a.example", "b.example"])
    expect(config.log_level).toBe("DEBUG")
  })

  test("flags win over the environment and the file", async () => {
    await using file = await tomlFile(`[web]\nport = 9000\n`)
    const config = loadConfig({
      env: { CHIMERA_CONFIG_FILE: file.path, CHIMERA_WEB_PORT: "9100", CHIMERA_WEB_HOST: "10.0.0.1" },
      flags: { web: { port: 9200 } },
    })
    expect(config.web).toEqual({ host: "10.0.0.1", port: 9200 })
  })

  test("flags may be given as the strings the CLI parsed", () => {
    const config = loadConfig({ env: {}, flags: { web: { port: "9300" }, agent: { auto_heal: "false" } } })
    expect(config.web.port).toBe(9300)
    expect(config.agent.auto_heal).toBe(false)
  })

  test("an empty environment variable counts as unset", () => {
    expect(loadConfig({ env: { CHIMERA_WEB_PORT: "", CHIMERA_LOG_LEVEL: "" } }).web.port).toBe(8080)
  })

  test("a missing config file is an error that names its path", () => {
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: "/nonexistent/chimera.toml" } }))
    expect(err.message).toBe("config: cannot read /nonexistent/chimera.toml (from CHIMERA_CONFIG_FILE): no such file")
  })

  test("dataDir and databaseUrl follow CHIMERA_DATA_DIR and CHIMERA_DB", () => {
    expect(dataDir({ HOME: "/home/ops" })).toBe("/home/ops/.local/share/chimera")
    expect(databaseUrl({ HOME: "/home/ops" })).toBe("sqlite:///home/ops/.local/share/chimera/chimera.db")
    expect(databaseUrl({ CHIMERA_DATA_DIR: "/srv/chimera" })).toBe("sqlite:///srv/chimera/chimera.db")
    expect(databaseUrl({ CHIMERA_DB: "postgres://db/chimera" })).toBe("postgres://db/chimera")
  })
})

describe("bad values name the field, the source and what was expected", () => {
  test("a non-numeric port from the environment", () => {
    const err = configError(() => loadConfig({ env: { CHIMERA_WEB_PORT: "http" } }))
    expect(err.message).toBe(
      'config: web.port: expected an integer from 1 to 65535, got "http" (from CHIMERA_WEB_PORT)',
    )
  })

  test("an out-of-range port in the file", async () => {
    await using file = await tomlFile(`[mcp]\nport = 70000\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toBe(`config: mcp.port: expected an integer from 1 to 65535, got 70000 (from ${file.path})`)
  })

  test("a boolean that is not one", () => {
    const err = configError(() => loadConfig({ env: { CHIMERA_AGENT_AUTO_HEAL: "sometimes" } }))
    expect(err.message).toBe(
      'config: agent.auto_heal: expected true or false, got "sometimes" (from CHIMERA_AGENT_AUTO_HEAL)',
    )
  })

  test("an interval below one second from a flag", () => {
    const err = configError(() => loadConfig({ env: {}, flags: { agent: { heartbeat_interval: 0 } } }))
    expect(err.message).toBe(
      "config: agent.heartbeat_interval: expected a whole number of seconds, at least 1, got 0 (from flag agent.heartbeat_interval)",
    )
  })

  test("a flag is named as the CLI spells it when the caller says so", () => {
    const err = configError(() =>
      loadConfig({ env: {}, flags: { web: { port: -1 } }, flagNames: { "web.port": "--port" } }),
    )
    expect(err.message).toContain("(from --port)")
    const typed = configError(() =>
      loadConfig({ env: {}, flags: { web: { port: "http" } }, flagNames: { "web.port": "--port" } }),
    )
    expect(typed.message).toBe('config: web.port: expected an integer from 1 to 65535, got "http" (from --port)')
  })

  test("an unknown log level", () => {
    const err = configError(() => loadConfig({ env: { CHIMERA_LOG_LEVEL: "loud" } }))
    expect(err.message).toBe(
      'config: log_level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case), got "loud" (from CHIMERA_LOG_LEVEL)',
    )
  })

  test("an ITSM provider Chimera does not speak", async () => {
    await using file = await tomlFile(`[itsm]\nprovider = "remedy"\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toContain('itsm.provider: expected "servicenow", "jira" or "" (none), got "remedy"')
  })

  test("a section that is not a table", async () => {
    await using file = await tomlFile(`web = 8080\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toBe(`config: web: expected a table (a [section] of settings), got 8080 (from ${file.path})`)
  })

  test("a misspelt key in the file is an error, not a silent default", async () => {
    await using file = await tomlFile(`[web]\nprot = 9000\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toBe(`config: web.prot: unknown setting (from ${file.path}); web has host, port`)
  })

  test("an unknown section in the file", async () => {
    await using file = await tomlFile(`[webb]\nport = 9000\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toStartWith(
      `config: webb: unknown setting (from ${file.path}); the configuration has nix, fleet,`,
    )
  })

  test("a misspelt environment variable under a known section", () => {
    const err = configError(() => loadConfig({ env: { CHIMERA_WEB_PROT: "9000" } }))
    expect(err.message).toBe("config: web.prot: unknown setting (from CHIMERA_WEB_PROT); web has host, port")
  })

  test("invalid TOML names the file and the parser's complaint", async () => {
    await using file = await tomlFile(`[web]\nport = = 1\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toBe(`config: ${file.path}: invalid TOML: Expected a value but found '='`)
  })

  test("every bad value is reported, not only the first", () => {
    const err = configError(() => loadConfig({ env: { CHIMERA_WEB_PORT: "x", CHIMERA_MCP_PORT: "y" } }))
    expect(err.message.split("\n")).toHaveLength(2)
  })
})

describe("[notifications] and [itsm]", () => {
  const load = (env: Record<string, string>) => () => loadConfig({ env })

  test("a Jira provider without a project key is refused, naming the field", () => {
    const err = configError(
      load({
        CHIMERA_ITSM_PROVIDER: "jira",
        CHIMERA_ITSM_URL: "https://example.atlassian.net",
        CHIMERA_ITSM_USERNAME: "ops@example.org",
        CHIMERA_ITSM_API_KEY: "token",
      }),
    )
    expect(err.message).toBe(
      'config: itsm.project_key: required when provider is "jira" (the project issues are made in); not set',
    )
  })

  test("a provider alone names each field it still needs", () => {
    const lines = configError(load({ CHIMERA_ITSM_PROVIDER: "servicenow" })).message.split("\n")
    expect(lines.map((l) => l.split(":")[1]?.trim())).toEqual(["itsm.url", "itsm.username", "itsm.api_key"])
  })

  test("a URL that is not https (or http to loopback) is refused; a secret one is not echoed", () => {
    const err = configError(
      load({
        CHIMERA_ITSM_URL: "javascript:alert(1)",
        CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: "ftp://hooks/T0/B0/xyz",
        CHIMERA_NOTIFICATIONS_PAGERDUTY_URL: "http://events.pagerduty.com/v2/enqueue",
      }),
    )
    const expected = 'expected an https URL (http only to a loopback address) or ""'
    expect(err.message).toContain(`itsm.url: ${expected}, got "javascript:alert(1)"`)
    expect(err.message).toContain(`notifications.slack_webhook_url: ${expected} (from`)
    expect(err.message).toContain(
      `notifications.pagerduty_url: ${expected}, got "http://events.pagerduty.com/v2/enqueue"`,
    )
    expect(err.message).not.toContain("T0/B0/xyz")
    const local = load({ CHIMERA_NOTIFICATIONS_PAGERDUTY_URL: "http://127.0.0.1:8443/v2/enqueue" })()
    expect(local.notifications.pagerduty_url).toBe("http://127.0.0.1:8443/v2/enqueue")
  })

  test("a channel's timeout stays inside the outbox's bound on one delivery", () => {
    const err = configError(load({ CHIMERA_ITSM_TIMEOUT_SECONDS: "60" }))
    expect(err.message).toBe(
      "config: itsm.timeout_seconds: expected a whole number of seconds from 1 to 25 (the outbox gives each delivery 30 s), got 60 (from CHIMERA_ITSM_TIMEOUT_SECONDS)",
    )
  })

  test("email needs a host, a sender and recipients that are addresses", () => {
    const err = configError(load({ CHIMERA_NOTIFICATIONS_EMAIL_TO: "ops@example.org, on-call" }))
    expect(err.message).toContain("notifications.email_smtp_host: required when email_from or email_to is set")
    expect(err.message).toContain("notifications.email_from: expected the sender's address")
    expect(err.message).toContain(
      'notifications.email_to: expected one or more addresses, separated by commas, got "ops@example.org, on-call"',
    )
  })

  test("a secret and its _file together, a user without a password, a password in clear: refused", () => {
    const err = configError(
      load({
        CHIMERA_ITSM_API_KEY: "k",
        CHIMERA_ITSM_API_KEY_FILE: "/run/keys/itsm",
        CHIMERA_NOTIFICATIONS_EMAIL_SMTP_HOST: "127.0.0.1",
        CHIMERA_NOTIFICATIONS_EMAIL_FROM: "chimera@example.org",
        CHIMERA_NOTIFICATIONS_EMAIL_TO: "ops@example.org",
        CHIMERA_NOTIFICATIONS_EMAIL_PASSWORD: "hunter2-password",
        CHIMERA_NOTIFICATIONS_EMAIL_STARTTLS: "false",
      }),
    )
    expect(err.message).toContain("itsm.api_key: set either api_key or api_key_file, not both")
    expect(err.message).toContain("notifications.email_username: email_username and email_password")
    expect(err.message).toContain("notifications.email_starttls: a password is never sent in clear")
    expect(err.message).not.toContain("hunter2")
  })

  test("addresses may carry a display name, but not a line break or a second address", () => {
    const base = { CHIMERA_NOTIFICATIONS_EMAIL_SMTP_HOST: "127.0.0.1" }
    const named = load({
      ...base,
      CHIMERA_NOTIFICATIONS_EMAIL_FROM: "Chimera <chimera@example.org>",
      CHIMERA_NOTIFICATIONS_EMAIL_TO: "On call <oncall@example.org>, ops@example.org",
    })()
    expect(named.notifications.email_from).toBe("Chimera <chimera@example.org>")
    const err = configError(
      load({
        ...base,
        CHIMERA_NOTIFICATIONS_EMAIL_FROM: "a@example.org\nBcc: b@example.org",
        CHIMERA_NOTIFICATIONS_EMAIL_TO: "x <a@example.org> <b@example.org>",
      }),
    )
    expect(err.message).toContain("notifications.email_from: expected the sender's address")
    expect(err.message).toContain("notifications.email_to: expected one or more addresses")
  })

  test("a complete configuration of every channel loads", () => {
    const config = loadConfig({
      env: {
        CHIMERA_ITSM_PROVIDER: "servicenow",
        CHIMERA_ITSM_URL: "https://example.service-now.com",
        CHIMERA_ITSM_USERNAME: "chimera",
        CHIMERA_ITSM_API_KEY_FILE: "/run/keys/servicenow",
        CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/T0/B0/x",
        CHIMERA_NOTIFICATIONS_PAGERDUTY_API_KEY: "R0UT1NGKEY",
        CHIMERA_NOTIFICATIONS_EMAIL_SMTP_HOST: "smtp.example.org",
        CHIMERA_NOTIFICATIONS_EMAIL_FROM: "chimera@example.org",
        CHIMERA_NOTIFICATIONS_EMAIL_TO: "ops@example.org,oncall@example.org",
        CHIMERA_NOTIFICATIONS_EMAIL_USERNAME: "chimera",
        CHIMERA_NOTIFICATIONS_EMAIL_PASSWORD_FILE: "/run/keys/smtp",
      },
    })
    expect(config.itsm).toMatchObject({ provider: "servicenow", close_code: "Solved (Permanently)" })
    expect(config.notifications).toMatchObject({ email_smtp_port: 587, email_starttls: true })
  })
})

describe("secrets", () => {
  const secret = "s3cr3t-value-never-shown"

  test("a bad secret value is named by its path but never echoed", async () => {
    await using file = await tomlFile(`[notifications]\nslack_webhook_url = "${secret}"\n[itsm]\napi_key = 42\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toContain("notifications.slack_webhook_url: expected an https URL")
    expect(err.message).toContain("itsm.api_key: expected a string")
    expect(err.message).not.toContain(secret)
    expect(err.message).not.toContain("42")
  })

  test("a TOML syntax error on a secret's line does not quote the secret", async () => {
    await using file = await tomlFile(`[itsm]\napi_key = ${secret}\n`)
    const err = configError(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } }))
    expect(err.message).toContain("invalid TOML: Strings must be quoted")
    expect(err.message).not.toContain(secret)
  })

  test("a secret from the environment is not echoed either", () => {
    const err = configError(() =>
      loadConfig({ env: { CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL: secret, CHIMERA_WEB_PORT: "0" } }),
    )
    expect(err.message).toContain("(from CHIMERA_NOTIFICATIONS_SLACK_WEBHOOK_URL)")
    expect(err.message).not.toContain(secret)
  })
})

describe("layers", () => {
  test("setBy names who set exactly a path, or null for a default", async () => {
    await using file = await tomlFile("[web]\nport = 9000\n[agent]\nnode_id = 'n1'\n")
    const layered = loadLayeredConfig({
      env: { CHIMERA_CONFIG_FILE: file.path, CHIMERA_WEB_PORT: "9100" },
      flags: { web: { host: "127.0.0.2" } },
      flagNames: { "web.host": "--host" },
    })
    expect(layered.file).toBe(file.path)
    expect(layered.setBy("web.port")).toBe("CHIMERA_WEB_PORT")
    expect(layered.setBy("web.host")).toBe("--host")
    expect(layered.setBy("agent.node_id")).toBe(file.path)
    expect(layered.setBy("agent.heartbeat_interval")).toBeNull()
    expect(layered.setBy("log_level")).toBeNull()
  })

  test("a relative path in the file is read from the file's directory; from the environment, from the cwd", async () => {
    await using file = await tomlFile('[nix]\nconfig_path = "fleet/default.nix"\n[ssh]\nidentity_file = "keys/id"\n')
    const dir = file.path.slice(0, file.path.lastIndexOf("/"))
    const config = loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path } })
    expect(config.nix.config_path).toBe(join(dir, "fleet/default.nix"))
    expect(config.ssh.identity_file).toBe(join(dir, "keys/id"))
    expect(config.ssh.known_hosts_file).toBe("")
    const fromEnv = loadConfig({ env: { CHIMERA_CONFIG_FILE: file.path, CHIMERA_NIX_CONFIG_PATH: "x.nix" } })
    expect(fromEnv.nix.config_path).toBe("x.nix")
  })

  test("a path starting with ~/, as ssh_config and the documented defaults write it, is in HOME", async () => {
    await using file = await tomlFile(
      '[ssh]\nidentity_file = "~/.ssh/id_fleet"\nknown_hosts_file = "~/.ssh/known_hosts"\n',
    )
    const env = { CHIMERA_CONFIG_FILE: file.path, HOME: "/home/ops" }
    const config = loadConfig({ env })
    expect(config.ssh.identity_file).toBe("/home/ops/.ssh/id_fleet")
    expect(config.ssh.known_hosts_file).toBe("/home/ops/.ssh/known_hosts")
    const fromEnv = loadConfig({ env: { ...env, CHIMERA_SSH_IDENTITY_FILE: "~/.ssh/id_other" } })
    expect(fromEnv.ssh.identity_file).toBe("/home/ops/.ssh/id_other")
  })

  test("a file named by a flag replaces CHIMERA_CONFIG_FILE, and a missing one names the flag", async () => {
    await using a = await tomlFile("[web]\nport = 9001\n")
    await using b = await tomlFile("[web]\nport = 9002\n")
    expect(loadConfig({ env: { CHIMERA_CONFIG_FILE: a.path }, file: b.path }).web.port).toBe(9002)
    const err = configError(() => loadConfig({ env: {}, file: "/nonexistent/chimera.toml" }))
    expect(err.message).toBe("config: cannot read /nonexistent/chimera.toml (from --config-file): no such file")
  })
})
