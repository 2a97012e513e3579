// The session life cycle over the real API: login with an argon2id password gives a one-hour RS256
// JWT naming the user's roles, permissions and CLI session limit; refresh, verify, revoke and the session
// list work; expired, forged, alg-none, HS256-with-the-public-key and revoked tokens are all refused.
// API tokens are named, scoped to a role, shown once and revocable.
import { describe, expect, test } from "bun:test"
import { createHmac, createPublicKey } from "node:crypto"
import { readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { SIGNING_KEY_FILE } from "../control/adapters/signing-keys.ts"
import { addUser, call, login, PASSWORD } from "./support/auth.ts"
import { manualClock } from "./support/clock.ts"
import { startInProcess } from "./support/control-plane.ts"

const parts = (jwt: string) => jwt.split(".") as [string, string, string]
const decode = (segment: string) => JSON.parse(Buffer.from(segment, "base64url").toString()) as Record<string, unknown>
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url")

describe("sessions", () => {
  test("login returns a one-hour RS256 JWT with the user's roles, permissions and session limit; the key file is private", async () => {
    await using cp = await startInProcess()
    await addUser(cp, "alice", "operator")
    const res = await call(cp, null, "POST", "/api/auth/login", { username: "alice", password: PASSWORD })
    expect(res.status).toBe(200)
    const body = (await res.json()) as { token: string; tokenType: string; expiresAt: string }
    expect(body.tokenType).toBe("Bearer")
    const [head, payload] = parts(body.token)
    expect(decode(head)).toMatchObject({ alg: "RS256", typ: "JWT" })
    const claims = decode(payload)
    expect(Object.keys(claims).sort()).toEqual(
      ["exp", "iat", "iss", "jti", "name", "permissions", "roles", "sessionLimit", "sub"].sort(),
    )
    expect(Number(claims.exp) - Number(claims.iat)).toBe(3600)
    expect(claims.roles).toEqual(["operator"])
    expect(claims.permissions).toEqual(expect.arrayContaining(["fleet:read", "fleet:deploy", "commands:run"]))
    // A CLI session is a process on the control-plane host: admin's alone.
    expect(claims.permissions).not.toContain("cli:use")
    expect(claims.sessionLimit).toBe(10)
    expect(statSync(join(cp.dataDir, SIGNING_KEY_FILE)).mode & 0o777).toBe(0o600)
    expect((await call(cp, body.token, "GET", "/api/nodes")).status).toBe(200)

    const wrong = await call(cp, null, "POST", "/api/auth/login", { username: "alice", password: "not the password" })
    expect(wrong.status).toBe(401)
    const nobody = await call(cp, null, "POST", "/api/auth/login", { username: "mallory", password: PASSWORD })
    expect(nobody.status).toBe(401)
    expect(await nobody.json()).toEqual(await wrong.json())
  })

  test("refresh issues a new token and revokes the old one; revoke refuses a token at once", async () => {
    await using cp = await startInProcess()
    await addUser(cp, "bob", "viewer")
    const first = await login(cp, "bob")
    const second = await login(cp, "bob")
    const sessions = (await (await call(cp, first, "GET", "/api/auth/sessions")).json()) as {
      sessions: { jti: string; current: boolean }[]
    }
    expect(sessions.sessions).toHaveLength(2)
    expect(sessions.sessions.filter((s) => s.current)).toHaveLength(1)

    const refreshed = (await (await call(cp, first, "POST", "/api/auth/refresh")).json()) as { token: string }
    expect((await call(cp, first, "GET", "/api/nodes")).status).toBe(401)
    expect((await call(cp, refreshed.token, "GET", "/api/nodes")).status).toBe(200)

    const verify = async (token: string) =>
      (await (await call(cp, second, "POST", "/api/auth/verify", { token })).json()) as { valid: boolean }
    expect((await verify(refreshed.token)).valid).toBe(true)
    expect((await call(cp, refreshed.token, "POST", "/api/auth/revoke", {})).status).toBe(200)
    expect((await call(cp, refreshed.token, "GET", "/api/nodes")).status).toBe(401)
    expect(await verify(refreshed.token)).toMatchObject({ valid: false })
    expect((await call(cp, second, "GET", "/api/nodes")).status).toBe(200)

    // Another user's session is the admin's to revoke, not a viewer's.
    await addUser(cp, "carol", "viewer")
    const carol = await login(cp, "carol")
    const carolJti = String(decode(parts(carol)[1]).jti)
    expect((await call(cp, second, "POST", "/api/auth/revoke", { jti: carolJti })).status).toBe(403)
    expect((await call(cp, cp.adminToken, "POST", "/api/auth/revoke", { jti: carolJti })).status).toBe(200)
    expect((await call(cp, carol, "GET", "/api/nodes")).status).toBe(401)
  })

  test("two refreshes of one token: one wins, the other is refused and leaves no second session", async () => {
    await using cp = await startInProcess()
    await addUser(cp, "carol", "operator")
    const first = await login(cp, "carol")
    const answers = await Promise.all([1, 2, 3].map(() => call(cp, first, "POST", "/api/auth/refresh")))
    const won = answers.filter((r) => r.status === 200)
    expect(won).toHaveLength(1)
    expect(answers.map((r) => r.status).sort()).toEqual([200, 401, 401])
    const { token } = (await (won[0] as Response).json()) as { token: string }
    expect((await call(cp, token, "GET", "/api/nodes")).status).toBe(200)
    const { sessions } = (await (await call(cp, token, "GET", "/api/auth/sessions")).json()) as { sessions: unknown[] }
    expect(sessions).toHaveLength(1)
  })

  test("a password typed into the username field reaches neither the log nor the audit log", async () => {
    await using cp = await startInProcess()
    const typo = "Hunter2-is-my-PASSWORD!"
    const res = await call(cp, null, "POST", "/api/auth/login", { username: typo, password: "whatever-it-is" })
    expect(res.status).toBeGreaterThanOrEqual(400)
    expect(res.status).toBeLessThan(500)
    const audit = await (await call(cp, cp.adminToken, "GET", "/api/audit?action=POST%20%2Fapi%2Fauth%2Flogin")).text()
    expect(audit).toContain('"actor":"anonymous"')
    expect(audit).not.toContain(typo)
  })

  test("expired, forged, alg-none, HS256-with-the-public-key and tampered tokens are refused", async () => {
    const clock = manualClock()
    await using cp = await startInProcess({ clock })
    await addUser(cp, "dave", "viewer")
    const token = await login(cp, "dave")
    const [head, payload, sig] = parts(token)
    const pem = createPublicKey(readFileSync(join(cp.dataDir, SIGNING_KEY_FILE), "utf8")).export({
      type: "spki",
      format: "pem",
    })
    const kid = decode(head).kid
    const hsHead = b64({ alg: "HS256", typ: "JWT", kid })
    const admin = b64({ ...decode(payload), roles: ["admin"] })
    const forgeries: Record<string, string> = {
      "alg none": `${b64({ alg: "none", typ: "JWT", kid })}.${payload}.`,
      "alg none with a signature": `${b64({ alg: "none", kid })}.${payload}.${sig}`,
      "HS256 with the public key": `${hsHead}.${payload}.${createHmac("sha256", pem).update(`${hsHead}.${payload}`).digest("base64url")}`,
      "roles changed": `${head}.${admin}.${sig}`,
      "signature cut": `${head}.${payload}.`,
      "another key": `${head}.${payload}.${Buffer.alloc(256, 7).toString("base64url")}`,
    }
    for (const [what, forged] of Object.entries(forgeries)) {
      const res = await call(cp, forged, "GET", "/api/nodes")
      expect(`${what}: ${res.status}`).toBe(`${what}: 401`)
      expect(await res.text()).not.toContain(payload)
    }
    expect((await call(cp, token, "GET", "/api/nodes")).status).toBe(200)
    clock.advance(3600 * 1000)
    const expired = await call(cp, token, "GET", "/api/nodes")
    expect(expired.status).toBe(401)
    expect(((await expired.json()) as { error: string }).error).toContain("expired")
  })

  test("a stolen session guesses the current password no faster than a login could: the same backoff", async () => {
    await using cp = await startInProcess()
    await addUser(cp, "gwen", "operator")
    const token = await login(cp, "gwen")
    const change = (currentPassword: string) =>
      call(cp, token, "POST", "/api/auth/password", { currentPassword, newPassword: PASSWORD })
    const statuses: number[] = []
    for (let i = 0; i < 7; i++) statuses.push((await change(`guess number ${i}`)).status)
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429])
    // Locked for the right password too, through this route and the login alike.
    const locked = await change(PASSWORD)
    expect(locked.status).toBe(429)
    expect(((await locked.json()) as { message: string }).message).toMatch(/too many failed logins for this username/)
    expect((await call(cp, null, "POST", "/api/auth/login", { username: "gwen", password: PASSWORD })).status).toBe(429)
  })

  test("a new password or a removed user ends that user's sessions at once", async () => {
    await using cp = await startInProcess()
    await addUser(cp, "erin", "operator")
    const token = await login(cp, "erin")
    const change = await call(cp, token, "POST", "/api/auth/password", {
      currentPassword: PASSWORD,
      newPassword: "an even better passphrase",
    })
    expect(change.status).toBe(200)
    expect((await call(cp, token, "GET", "/api/nodes")).status).toBe(401)
    const again = await login(cp, "erin", "an even better passphrase")
    expect((await call(cp, cp.adminToken, "DELETE", "/api/users/erin")).status).toBe(200)
    expect((await call(cp, again, "GET", "/api/nodes")).status).toBe(401)
    const users = (await (await call(cp, cp.adminToken, "GET", "/api/users")).json()) as { users: unknown[] }
    expect(JSON.stringify(users)).not.toContain("argon2")
    expect(users.users).toHaveLength(0)
  })
})

describe("API tokens", () => {
  test("are named, scoped to a role, shown once, listed without the secret, and revocable at once", async () => {
    await using cp = await startInProcess()
    const created = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "ci deploys", role: "operator" })
    expect(created.status).toBe(201)
    const { id, token } = (await created.json()) as { id: string; token: string }
    expect(token).toStartWith("chm_api_")
    expect((await call(cp, token, "GET", "/api/nodes")).status).toBe(200)
    expect((await call(cp, token, "POST", "/api/nodes/join-tokens", {})).status).toBe(403)
    const list = await (await call(cp, cp.adminToken, "GET", "/api/tokens")).text()
    expect(list).toContain("ci deploys")
    expect(list).not.toContain(token)
    expect((await call(cp, cp.adminToken, "DELETE", `/api/tokens/${id}`)).status).toBe(200)
    expect((await call(cp, token, "GET", "/api/nodes")).status).toBe(401)
    expect((await call(cp, cp.adminToken, "DELETE", "/api/tokens/bootstrap-admin")).status).toBe(409)
  })
})
