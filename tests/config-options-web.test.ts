// The control plane's settings ([web], [auth], [retention], [rate_limits], [incidents]) through `chimera web` at each
// layer (tests/support/config-layers.ts), and the channel sections ([itsm], [notifications]), checked
// at start with the field named. What is observed is what the control plane
// does: the address it listens on, the session length it grants, the rate limits it answers with; for
// the settings that only show over days or whole windows, its own `settings` line at INFO. [mcp] is
// read by `chimera mcp`, the MCP server, observed by the address it serves on.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { addUser, call, enrollNode, heartbeatBody, PASSWORD } from "./support/auth.ts"
import { baseEnv, type Group, type Layer, logLines, type Setup, table, UNCHECKED } from "./support/config-layers.ts"
import { freePort } from "./support/control-plane.ts"
import { type AddressClaim, claimAddresses } from "./support/loopback.ts"
import { run } from "./support/tools.ts"
import { withWeb } from "./support/web-process.ts"

setDefaultTimeout(240_000)

const MAIN = join(import.meta.dir, "../control/main.ts")

let work: string
let hosts: AddressClaim[]

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "chimera-config-web-"))
  hosts = claimAddresses(3)
})
afterAll(async () => {
  for (const h of hosts ?? []) h.release()
  if (work) await rm(work, { recursive: true, force: true })
})

const layered = <O>(group: Group<O>) => table(group, { workDir: () => work })

interface WebObs {
  url: string
  settings: Record<string, unknown>
  sessionSeconds: number
  limit: { api: number; login: number; agent: number }
}

const webPorts = new Map<Layer, number>()

async function web(s: Setup): Promise<WebObs> {
  const defaultPort = freePort()
  // The defaults (127.0.0.1:8080) are not bound here: other processes on this machine may hold 8080.
  const flags = s.layer === "default" ? ["--host", "127.0.0.1", "--port", String(defaultPort)] : []
  const { result, stderr } = await withWeb(["-v", "web", ...flags, ...s.flags], s.env, async (url) => {
    const admin = (await Bun.file(join(s.env.CHIMERA_DATA_DIR ?? "", "admin.token")).text()).trim()
    const cp = { url, adminToken: admin } as Parameters<typeof addUser>[0]
    await addUser(cp, "alice", "viewer")
    const login = await call(cp, null, "POST", "/api/auth/login", { username: "alice", password: PASSWORD })
    const { expiresAt } = (await login.json()) as { expiresAt: string }
    const nodes = await call(cp, admin, "GET", "/api/nodes")
    const credential = await enrollNode(cp, "limits-node")
    const agentCall = await call(
      cp,
      credential,
      "POST",
      "/api/agent/limits-node/heartbeat",
      heartbeatBody("limits-node"),
    )
    return {
      url: url.replace(String(defaultPort), "DEFAULT-TEST-PORT"),
      sessionSeconds: Math.round((Date.parse(expiresAt) - Date.now()) / 60_000) * 60,
      limit: {
        api: Number(nodes.headers.get("x-ratelimit-limit")),
        login: Number(login.headers.get("x-ratelimit-limit")),
        agent: Number(agentCall.headers.get("x-ratelimit-limit")),
      },
    }
  })
  const settings = logLines(stderr).find((l) => l.msg === "settings")
  if (!settings) throw new Error(`no settings line:\n${stderr}`)
  return { ...result, settings }
}

const rateLimit = (name: string) => (o: WebObs) =>
  (o.settings.rateLimits as Record<string, { limit: number; windowMs: number }>)[name]?.limit

layered<WebObs>({
  name: "chimera web",
  rows: [
    {
      option: "web.host",
      file: "HOST-FILE",
      env: "HOST-ENV",
      flag: ["--host", "HOST-FLAG"],
      expect: { default: UNCHECKED, file: "HOST-FILE", env: "HOST-ENV", flag: "HOST-FLAG" },
      observe: (o) => hostLabel(new URL(o.url).hostname),
    },
    {
      option: "web.port",
      file: "PORT-FILE",
      env: "PORT-ENV",
      flag: ["--port", "PORT-FLAG"],
      expect: { default: UNCHECKED, file: "file", env: "env", flag: "flag" },
      observe: (o) => [...webPorts].find(([, p]) => p === Number(new URL(o.url).port))?.[0],
    },
    {
      option: "auth.jwt_ttl_seconds",
      file: 600,
      env: "1200",
      expect: { default: 3600, file: 600, env: 1200 },
      observe: (o) => o.sessionSeconds,
    },
    {
      option: "rate_limits.api",
      file: 1001,
      env: "1002",
      expect: { default: 300, file: 1001, env: 1002 },
      observe: (o) => o.limit.api,
    },
    {
      option: "rate_limits.login",
      file: 21,
      env: "22",
      expect: { default: 10, file: 21, env: 22 },
      observe: (o) => o.limit.login,
    },
    {
      option: "rate_limits.agent",
      file: 2001,
      env: "2002",
      expect: { default: 1200, file: 2001, env: 2002 },
      observe: (o) => o.limit.agent,
    },
    // These take effect in the long run (days, whole windows, WebSocket and session counts); what shows
    // at start is the control plane's own statement of them, its `settings` line at INFO.
    {
      option: "auth.node_credential_rotation_days",
      file: 7,
      env: "0",
      expect: { default: 30, file: 7, env: 0 },
      observe: (o) => o.settings.nodeRotationDays,
    },
    {
      option: "retention.command_days",
      file: 3,
      env: "0",
      expect: { default: 30, file: 3, env: 0 },
      observe: (o) => o.settings.retentionCommandDays,
    },
    {
      option: "retention.event_days",
      file: 7,
      env: "0",
      expect: { default: 90, file: 7, env: 0 },
      observe: (o) => o.settings.retentionEventDays,
    },
    {
      option: "retention.deployment_days",
      file: 30,
      env: "0",
      expect: { default: 365, file: 30, env: 0 },
      observe: (o) => o.settings.retentionDeploymentDays,
    },
    ...(
      [
        ["event_streams_per_user", 16, 3, "4"],
        ["event_streams", 1000, 30, "40"],
        ["node_report_bytes", 4 * 1024 * 1024, 100_000, "200000"],
        ["node_reports", 600, 50, "60"],
        ["node_report_window_seconds", 60, 30, "20"],
        ["node_report_bytes_per_day", 256 * 1024 * 1024, 2_000_000, "3000000"],
      ] as const
    ).map(([field, byDefault, file, env]) => ({
      option: `limits.${field}`,
      file,
      env,
      expect: { default: byDefault, file, env: Number(env) },
      observe: (o: WebObs) => (o.settings.limits as Record<string, number>)[field],
    })),
    // The incident policy the control plane runs with (the thresholds' effect: incidents-e2e.test.ts).
    ...(
      [
        ["unreachable_after_seconds", 120, 30, "45", 45],
        ["drift_unhealed_after_seconds", 600, 60, "90", 90],
        [
          "page",
          ["heal-failed", "unreachable", "missing-closure"],
          ["heal-failed"],
          "deploy-failed,unreachable",
          ["deploy-failed", "unreachable"],
        ],
        ["quiet_hours", "", "22:00-07:00", "23:30-06:00", "23:30-06:00"],
        ["quiet_hours_timezone", "UTC", "Europe/Paris", "America/New_York", "America/New_York"],
        ["slack_min_severity", "info", "warning", "critical", "critical"],
        ["email_min_severity", "warning", "critical", "info", "info"],
        ["pagerduty_min_severity", "warning", "critical", "info", "info"],
        ["ticket_min_severity", "warning", "info", "critical", "critical"],
        ["update_every_seconds", 900, 60, "120", 120],
        ["dashboard_url", "", "https://file.example", "https://env.example", "https://env.example"],
      ] as const
    ).map(([field, byDefault, file, env, fromEnv]) => ({
      option: `incidents.${field}`,
      file,
      env,
      expect: { default: byDefault, file, env: fromEnv },
      observe: (o: WebObs) => (o.settings.incidents as Record<string, unknown>)[field],
    })),
    {
      option: "rate_limits.window_seconds",
      file: 120,
      env: "30",
      expect: { default: 60_000, file: 120_000, env: 30_000 },
      observe: (o) => (o.settings.rateLimits as Record<string, { windowMs: number }>).api?.windowMs,
    },
    {
      option: "rate_limits.sessions",
      file: 4,
      env: "5",
      expect: { default: 10, file: 4, env: 5 },
      observe: rateLimit("sessions"),
    },
    {
      option: "rate_limits.commands",
      file: 40,
      env: "50",
      expect: { default: 60, file: 40, env: 50 },
      observe: rateLimit("commands"),
    },
    {
      option: "rate_limits.websocket",
      file: 400,
      env: "500",
      expect: { default: 100, file: 400, env: 500 },
      observe: rateLimit("websocket"),
    },
    {
      option: "rate_limits.chat",
      file: 7,
      env: "8",
      expect: { default: 30, file: 7, env: 8 },
      observe: rateLimit("chat"),
    },
  ],
  async run(s) {
    // Each layer its own address and port, so where the control plane listens shows which one won.
    const spell = (v: string) =>
      v
        .replace("HOST-FILE", hostOf("file"))
        .replace("HOST-ENV", hostOf("env"))
        .replace("HOST-FLAG", hostOf("flag"))
        .replace(/"?PORT-(FILE|ENV|FLAG)"?/, (_, l: string) => String(portOf(l.toLowerCase() as Layer)))
    if (s.env.CHIMERA_CONFIG_FILE)
      await writeFile(s.env.CHIMERA_CONFIG_FILE, spell(await Bun.file(s.env.CHIMERA_CONFIG_FILE).text()))
    for (const name of ["CHIMERA_WEB_HOST", "CHIMERA_WEB_PORT"]) if (s.env[name]) s.env[name] = spell(s.env[name])
    s.flags = s.flags.map(spell)
    return web(s)
  },
})

const hostOf = (layer: Layer) => hosts[["file", "env", "flag"].indexOf(layer)]?.address ?? ""
const hostLabel = (address: string) =>
  ({ [hostOf("file")]: "HOST-FILE", [hostOf("env")]: "HOST-ENV", [hostOf("flag")]: "HOST-FLAG" })[address] ?? address
function portOf(layer: Layer): number {
  if (!webPorts.has(layer)) webPorts.set(layer, freePort())
  return webPorts.get(layer) as number
}

/** `chimera mcp` over HTTP: where it says it serves, then that it answers there. */
async function mcp(s: Setup): Promise<{ url: string }> {
  const defaultPort = freePort()
  // The default (localhost:8765) is not bound here: another process on this machine may hold it.
  const flags = s.layer === "default" ? ["--host", "127.0.0.1", "--port", String(defaultPort)] : []
  const proc = Bun.spawn([process.execPath, MAIN, "mcp", ...flags, ...s.flags], {
    env: { ...s.env, CHIMERA_URL: "http://127.0.0.1:1" },
    stdout: "ignore",
    stderr: "pipe",
  })
  try {
    const reader = proc.stderr.getReader()
    let text = ""
    while (!text.includes("\n")) {
      const { value, done } = await reader.read()
      if (done) throw new Error(`chimera mcp exited: ${text}`)
      text += new TextDecoder().decode(value)
    }
    const url = /on (http:\/\/\S+?),/.exec(text)?.[1] ?? text
    // Without a credential the MCP endpoint answers 401 itself, before asking the control plane.
    const answer = await fetch(url, { method: "GET" })
    return { url: `${new URL(url).hostname}:${new URL(url).port} ${answer.status === 401 ? "answers" : answer.status}` }
  } finally {
    proc.kill("SIGTERM")
    await proc.exited
  }
}

layered<{ url: string }>({
  name: "chimera mcp",
  rows: [
    {
      option: "mcp.host",
      file: "HOST-FILE",
      env: "HOST-ENV",
      flag: ["--host", "HOST-FLAG"],
      expect: { default: UNCHECKED, file: "HOST-FILE", env: "HOST-ENV", flag: "HOST-FLAG" },
      observe: (o) => hostLabel(o.url.split(":")[0] ?? ""),
    },
    {
      option: "mcp.port",
      file: "PORT-FILE",
      env: "PORT-ENV",
      flag: ["--port", "PORT-FLAG"],
      expect: { default: UNCHECKED, file: "file answers", env: "env answers", flag: "flag answers" },
      observe: (o) => {
        const [address = "", status = ""] = o.url.split(" ")
        return `${[...mcpPorts].find(([, p]) => p === Number(address.split(":")[1]))?.[0]} ${status}`
      },
    },
  ],
  async run(s) {
    const spell = (v: string) =>
      v
        .replace("HOST-FILE", hostOf("file"))
        .replace("HOST-ENV", hostOf("env"))
        .replace("HOST-FLAG", hostOf("flag"))
        .replace(/"?PORT-(FILE|ENV|FLAG)"?/, (_, l: string) => String(mcpPortOf(l.toLowerCase() as Layer)))
    if (s.env.CHIMERA_CONFIG_FILE)
      await writeFile(s.env.CHIMERA_CONFIG_FILE, spell(await Bun.file(s.env.CHIMERA_CONFIG_FILE).text()))
    for (const name of ["CHIMERA_MCP_HOST", "CHIMERA_MCP_PORT"]) if (s.env[name]) s.env[name] = spell(s.env[name])
    s.flags = s.flags.map(spell)
    return mcp(s)
  },
})

const mcpPorts = new Map<Layer, number>()
function mcpPortOf(layer: Layer): number {
  if (!mcpPorts.has(layer)) mcpPorts.set(layer, freePort())
  return mcpPorts.get(layer) as number
}

describe("channel sections", () => {
  test("[itsm] and [notifications] are live: no 'not active' warning; an incomplete one stops the start", async () => {
    const dir = join(work, "channels")
    await mkdir(join(dir, "etc"), { recursive: true })
    const file = join(dir, "etc", "chimera.toml")
    await writeFile(
      file,
      '[mcp]\nport = 9999\n[notifications]\nemail_smtp_host = "127.0.0.1"\nemail_from = "chimera@example.org"\nemail_to = "ops@example.org"\nslack_webhook_url = "https://hooks.example/secret-path"\n',
    )
    const port = freePort()
    const env = { ...(await baseEnv(dir)), CHIMERA_CONFIG_FILE: file }
    const { stderr } = await withWeb(["web", "--host", "127.0.0.1", "--port", String(port)], env, async () => {})
    expect(stderr).not.toContain("not active")
    expect(stderr).not.toContain("secret-path")
    // A provider without what it needs, and a bad value, each stop the start with the field named.
    const half = await run([process.execPath, MAIN, "web", "--port", String(port)], {
      env: { ...env, CHIMERA_ITSM_PROVIDER: "jira", CHIMERA_NOTIFICATIONS_EMAIL_SMTP_PORT: "smtp" },
    })
    expect(half.code).toBe(1)
    expect(half.stderr).toContain('itsm.project_key: required when provider is "jira"')
    expect(half.stderr).toContain("notifications.email_smtp_port: expected an integer from 1 to 65535")
    expect(half.stderr).not.toContain("secret-path")
    // A secret file that cannot be read stops it too, naming the field and the file.
    const keyless = await run([process.execPath, MAIN, "web", "--port", String(port)], {
      env: { ...env, CHIMERA_NOTIFICATIONS_PAGERDUTY_API_KEY_FILE: join(dir, "absent.key") },
    })
    expect(keyless.code).toBe(1)
    expect(keyless.stderr).toContain(
      `config: notifications.pagerduty_api_key_file: cannot read ${join(dir, "absent.key")}: no such file`,
    )
    expect(keyless.stderr).not.toMatch(/^\s+at /m)
  })

  test("without a config file or variables, the control plane warns about nothing", async () => {
    const dir = join(work, "quiet")
    const port = freePort()
    const { stderr } = await withWeb(
      ["web", "--host", "127.0.0.1", "--port", String(port)],
      await baseEnv(dir),
      async () => {},
    )
    expect(stderr).toBe("")
  })
})
