// Which identity the CLI acts as, against a real control plane: `chimera whoami` names the user, the
// role, how the CLI authenticated (CHIMERA_TOKEN, the login session, the local admin token file) and
// the control plane's URL, for each of the three sources and in their order of precedence; `--verbose`
// says the same on stderr for any command that calls the API; GET /api/auth/me answers any user.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { addUser, call, enrollNode, login, PASSWORD } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { run } from "./support/tools.ts"

setDefaultTimeout(60_000)

const MAIN = join(import.meta.dir, "../control/main.ts")

let cp: TestControlPlane
let home: string
let botToken: string

beforeAll(async () => {
  cp = await startInProcess()
  home = await mkdtemp(join(tmpdir(), "chimera-whoami-"))
  await addUser(cp, "alice", "viewer")
  const made = await cp.api("/api/tokens", {
    method: "POST",
    body: JSON.stringify({ name: "ci-bot", role: "operator" }),
  })
  botToken = ((await made.json()) as { token: string }).token
})
afterAll(async () => {
  await cp?.stop()
  if (home) await rm(home, { recursive: true, force: true })
})

const tokenFile = () => join(home, "config", "chimera", "token")
const adminTokenFile = () => join(cp.dataDir, "admin.token")

/** The CLI on the control plane's own host: its data dir (and admin token file) is the control plane's. */
const chimera = (args: string[], opts: { token?: string; stdin?: string } = {}) =>
  run([process.execPath, MAIN, ...args], {
    stdin: opts.stdin,
    env: {
      HOME: home,
      XDG_CONFIG_HOME: join(home, "config"),
      CHIMERA_URL: cp.url,
      CHIMERA_TOKEN: opts.token ?? "",
      CHIMERA_DATA_DIR: cp.dataDir,
      CHIMERA_CONFIG_FILE: "",
      NO_COLOR: "1",
    },
  })

async function whoami(opts: { token?: string } = {}) {
  const r = await chimera(["whoami", "--json"], opts)
  expect(r.stderr).toBe("")
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout)
}

// One order: each step adds a credential source that outranks the one before.
describe("chimera whoami and --verbose, for each credential source", () => {
  test("with only the local admin token file: the bootstrap admin, from that file", async () => {
    expect(await whoami()).toMatchObject({
      url: cp.url,
      name: "bootstrap admin",
      role: "admin",
      via: "api-token",
      authenticated: { source: "admin-token-file", path: adminTokenFile(), expiresAt: null },
    })
    const human = await chimera(["whoami"])
    expect(human.stdout).toContain(`local admin token (${adminTokenFile()})`)
    expect(human.stdout).toContain(cp.url)
  })

  test("after `chimera login` as a viewer, the login session outranks the admin token file, and says so", async () => {
    const r = await chimera(["login", "alice", "--password-stdin"], { stdin: `${PASSWORD}\n` })
    expect(r.code).toBe(0)
    const me = await whoami()
    expect(me).toMatchObject({
      url: cp.url,
      name: "alice",
      role: "viewer",
      via: "session",
      authenticated: { source: "login-session", path: tokenFile() },
      permissions: ["metrics:read", "auth:session", "fleet:read"],
    })
    expect(Date.parse(me.authenticated.expiresAt)).toBeGreaterThan(Date.now())
    const human = await chimera(["whoami"])
    expect(human.stdout).toMatch(/^user\s+alice$/m)
    expect(human.stdout).toMatch(/^role\s+viewer$/m)
    expect(human.stdout).toContain(`login session (${tokenFile()}, until `)
  })

  test("--verbose names the identity on stderr, before the command's own output and error", async () => {
    const listed = await chimera(["-v", "nodes", "list", "--json"])
    expect(listed.code).toBe(0)
    expect(JSON.parse(listed.stdout)).toEqual({ nodes: [] }) // stdout stays the data alone
    expect(listed.stderr).toContain(`acting as alice (viewer) with the login session (${tokenFile()}`)
    expect(listed.stderr).toContain(`on ${cp.url}`)

    const refused = await chimera(["--verbose", "users", "list"])
    expect(refused.code).toBe(1)
    const lines = refused.stderr.trim().split("\n")
    expect(lines[0]).toContain("acting as alice (viewer) with the login session")
    expect(lines.at(-1)).toContain("needs the users:manage permission")

    // Without --verbose, nothing is added.
    expect((await chimera(["nodes", "list", "--json"])).stderr).toBe("")
  })

  test("CHIMERA_TOKEN outranks both the login session and the admin token file", async () => {
    expect(await whoami({ token: botToken })).toMatchObject({
      name: "ci-bot",
      role: "operator",
      via: "api-token",
      authenticated: { source: "CHIMERA_TOKEN", path: null, expiresAt: null },
    })
    const verbose = await chimera(["-v", "events", "--json"], { token: botToken })
    expect(verbose.code).toBe(0)
    expect(verbose.stderr).toContain("acting as ci-bot (operator, API token) with the CHIMERA_TOKEN (environment)")
  })

  test("a login session the control plane refuses is reported with where it came from; logout restores the admin", async () => {
    // The session is revoked on the control plane (as `chimera logout` elsewhere, or an admin, would).
    const stored = JSON.parse(await Bun.file(tokenFile()).text()) as { token: string }
    expect((await call(cp, stored.token, "POST", "/api/auth/revoke", {})).status).toBe(200)

    const r = await chimera(["whoami"])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`refused the login session (${tokenFile()}`)
    expect(r.stderr).toContain("revoked")
    expect(r.stderr).not.toMatch(/\n\s+at /)

    expect((await chimera(["logout"])).code).toBe(0)
    expect((await whoami()).authenticated.source).toBe("admin-token-file")
  })
})

describe("GET /api/auth/me", () => {
  test("answers any user principal with its name, role and permissions; no token is 401, a node is 403", async () => {
    const viewer = await login(cp, "alice")
    const me = await call(cp, viewer, "GET", "/api/auth/me")
    expect(me.status).toBe(200)
    const body = await me.json()
    expect(body).toMatchObject({
      name: "alice",
      role: "viewer",
      via: "session",
      permissions: ["metrics:read", "auth:session", "fleet:read"],
    })
    expect(JSON.stringify(body)).not.toContain(viewer)

    expect((await call(cp, null, "GET", "/api/auth/me")).status).toBe(401)
    const node = await enrollNode(cp, "me-node")
    expect((await call(cp, node, "GET", "/api/auth/me")).status).toBe(403)
  })
})
