// An admin changes a user's role (PUT /api/users/:username/role, `chimera users set-role`), and the
// change holds at once: a session issued before it is refused with a 401 that says to log in again, so
// no token keeps the old role's permissions; a new login carries the new role. One audit entry each.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { USAGE_STATUS } from "../control/cli/errors.ts"
import { addUser, call, enrollNode, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const ACTION = "PUT /api/users/:username/role"

let cp: TestControlPlane
let boss: string

beforeAll(async () => {
  cp = await startInProcess()
  await enrollNode(cp, "n1")
  await addUser(cp, "boss", "admin")
  boss = await login(cp, "boss")
})
afterAll(async () => {
  await cp.stop()
})

const setRole = (token: string, username: string, body: unknown) =>
  call(cp, token, "PUT", `/api/users/${username}/role`, body)
/** An operator route: setting a node's desired closure (fleet:deploy). */
const deploy = (token: string) => call(cp, token, "PUT", "/api/nodes/n1/desired", { closure: GEN1 })
const listed = async (username: string) => {
  const { users } = (await (await call(cp, boss, "GET", "/api/users")).json()) as { users: { username: string }[] }
  return users.find((u) => u.username === username)
}
const roleChanges = async (username: string) => {
  const res = await call(cp, boss, "GET", `/api/audit?action=${encodeURIComponent(ACTION)}`)
  const { entries } = (await res.json()) as {
    entries: { path: string; actor: string; status: number; detail: unknown }[]
  }
  return entries.filter((e) => e.path === `/api/users/${username}/role`)
}

describe("changing a user's role", () => {
  test("a demoted operator's old session is refused at once; promoting back restores deploys after a new login", async () => {
    await addUser(cp, "ops", "operator")
    const old = await login(cp, "ops")
    expect((await deploy(old)).status).toBe(200)

    const demoted = await setRole(boss, "ops", { role: "viewer" })
    expect(demoted.status).toBe(200)
    const view = await demoted.json()
    expect(view).toMatchObject({ username: "ops", role: "viewer" })
    expect(view).toEqual(await listed("ops"))

    const refused = await deploy(old)
    expect(refused.status).toBe(401)
    expect(((await refused.json()) as { error: string }).error).toContain("log in again")
    expect((await call(cp, old, "GET", "/api/nodes")).status).toBe(401)

    const asViewer = await login(cp, "ops")
    expect((await call(cp, asViewer, "GET", "/api/nodes")).status).toBe(200)
    expect((await deploy(asViewer)).status).toBe(403)

    const entries = await roleChanges("ops")
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ actor: "boss", status: 200, detail: { role: "viewer" } })

    const promoted = await setRole(boss, "ops", { role: "operator" })
    expect(promoted.status).toBe(200)
    expect(await promoted.json()).toMatchObject({ username: "ops", role: "operator" })
    expect((await deploy(asViewer)).status).toBe(401)
    expect((await deploy(await login(cp, "ops"))).status).toBe(200)
    expect(await roleChanges("ops")).toHaveLength(2)
  })

  test("a demoted admin keeps no token above the new role: their admin tokens are revoked, the others stay", async () => {
    await addUser(cp, "chief", "admin")
    const chief = await login(cp, "chief")
    const token = async (role: string) => {
      const res = await call(cp, chief, "POST", "/api/tokens", { name: `chief-${role}`, role })
      expect(res.status).toBe(201)
      return ((await res.json()) as { token: string }).token
    }
    const [asAdmin, asOperator] = [await token("admin"), await token("operator")]
    expect((await call(cp, asAdmin, "GET", "/api/users")).status).toBe(200)
    expect((await setRole(boss, "chief", { role: "operator" })).status).toBe(200)
    expect((await call(cp, asAdmin, "GET", "/api/users")).status).toBe(401)
    expect((await deploy(asOperator)).status).toBe(200)
    const { tokens } = (await (await call(cp, boss, "GET", "/api/tokens")).json()) as {
      tokens: { name: string; revokedAt: string | null }[]
    }
    // Listed by creation time, then id: two tokens made in the same millisecond come in either order.
    const chiefs = tokens.filter((t) => t.name.startsWith("chief-")).map((t) => [t.name, t.revokedAt !== null])
    expect(chiefs.sort()).toEqual([
      ["chief-admin", true],
      ["chief-operator", false],
    ])
  })

  test("a token made with a token answers to the same user: demoting or removing them revokes it too", async () => {
    for (const [name, act] of [
      ["heir", (u: string) => setRole(boss, u, { role: "viewer" })],
      ["leaver", (u: string) => call(cp, boss, "DELETE", `/api/users/${u}`)],
    ] as const) {
      await addUser(cp, name, "admin")
      const session = await login(cp, name)
      const mint = async (by: string, label: string) => {
        const res = await call(cp, by, "POST", "/api/tokens", { name: `${name}-${label}`, role: "admin" })
        expect(res.status).toBe(201)
        return ((await res.json()) as { token: string }).token
      }
      const first = await mint(session, "first")
      const second = await mint(first, "second")
      const third = await mint(second, "third")
      expect((await call(cp, third, "GET", "/api/users")).status).toBe(200)
      expect((await act(name)).status).toBeLessThan(300)
      for (const t of [first, second, third]) expect((await call(cp, t, "GET", "/api/users")).status).toBe(401)
    }
    // The bootstrap admin token answers for itself and for what it makes: those stay.
    const res = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "root-made", role: "admin" })
    const rootMade = ((await res.json()) as { token: string }).token
    expect((await call(cp, rootMade, "GET", "/api/users")).status).toBe(200)
  })

  test("setting the role a user already has changes nothing and keeps their sessions", async () => {
    await addUser(cp, "same", "operator")
    const token = await login(cp, "same")
    const res = await setRole(boss, "same", { role: "operator" })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ username: "same", role: "operator" })
    expect((await deploy(token)).status).toBe(200)
  })

  test("an unknown user is a 404 that names them; a bad role or a stray field is a 422 with the field path", async () => {
    const unknown = await setRole(boss, "ghost", { role: "viewer" })
    expect(unknown.status).toBe(404)
    expect(((await unknown.json()) as { error: string }).error).toBe('user "ghost" not found')

    await addUser(cp, "vic", "viewer")
    const bad = await setRole(boss, "vic", { role: "root" })
    expect(bad.status).toBe(422)
    const body = (await bad.json()) as { error: string; detail: { issues: { path: string }[] } }
    expect(body.error).toStartWith("body.role:")
    expect(body.detail.issues.map((i) => i.path)).toEqual(["role"])
    expect((await setRole(boss, "vic", { role: "admin", password: "x" })).status).toBe(422)
    expect((await listed("vic")) as unknown).toMatchObject({ role: "viewer" })
  })

  test("only users:manage may change a role: an operator gets 403 and cannot promote themselves", async () => {
    await addUser(cp, "climber", "operator")
    const res = await setRole(await login(cp, "climber"), "climber", { role: "admin" })
    expect(res.status).toBe(403)
    expect((await listed("climber")) as unknown).toMatchObject({ role: "operator" })
  })

  test("`chimera users set-role` changes the role, prints JSON with --json, and lists the valid roles on a bad one", async () => {
    const home = await mkdtemp(join(tmpdir(), "chimera-cli-home-"))
    try {
      const chimera = (args: string[]) =>
        run([process.execPath, MAIN, ...args], {
          env: {
            HOME: home,
            XDG_CONFIG_HOME: "",
            CHIMERA_URL: cp.url,
            CHIMERA_TOKEN: cp.adminToken,
            CHIMERA_DATA_DIR: join(home, "data"),
          },
        })
      await addUser(cp, "cli", "viewer")

      const json = await chimera(["users", "set-role", "cli", "operator", "--json"])
      expect(json.code).toBe(0)
      expect(JSON.parse(json.stdout)).toEqual(await listed("cli"))
      expect(JSON.parse(json.stdout)).toMatchObject({ username: "cli", role: "operator" })

      const human = await chimera(["users", "set-role", "cli", "admin"])
      expect(human.code).toBe(0)
      expect(human.stdout).toContain("cli is now admin")
      expect((await listed("cli")) as unknown).toMatchObject({ role: "admin" })

      const bad = await chimera(["users", "set-role", "cli", "root"])
      expect(bad.code).toBe(USAGE_STATUS)
      expect(bad.stderr).toContain("viewer, operator, admin")
      const unknown = await chimera(["users", "set-role", "ghost", "viewer"])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain('user "ghost" not found')
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  }, 60_000)
})
