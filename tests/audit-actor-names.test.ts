// The audit log names each row's actor by its principal's name; an API token's name is its own. A
// token named as a user or as the bootstrap admin made its rows read as theirs: a viewer token named
// "bootstrap admin" left rows with the bootstrap admin's name on them. Token names and usernames
// never meet now, whichever comes first.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { addUser, call } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"

let cp: TestControlPlane

beforeAll(async () => {
  cp = await startInProcess()
  await addUser(cp, "alice", "admin")
})
afterAll(() => cp?.stop())

const makeToken = (name: string) => call(cp, cp.adminToken, "POST", "/api/tokens", { name, role: "viewer" })

test("a token is not named as a user or the bootstrap admin, in any case", async () => {
  // Nor as one that only reads as theirs: a trailing space is not seen, and a web page shows two as one.
  for (const name of ["alice", "ALICE", "alice ", "bootstrap admin", "Bootstrap Admin", "bootstrap  admin"]) {
    const res = await makeToken(name)
    expect({ name, status: res.status }).toEqual({ name, status: 409 })
    expect(((await res.json()) as { error: string }).error).toContain("would read as theirs")
  }
  const tokens = (await (await call(cp, cp.adminToken, "GET", "/api/tokens")).json()) as { tokens: { name: string }[] }
  expect(tokens.tokens.filter((t) => t.name.toLowerCase() === "bootstrap admin")).toHaveLength(1)
})

test("a user is not named as a live token; once the token is revoked, the name is free", async () => {
  const made = await makeToken("ci")
  expect(made.status).toBe(201)
  const user = { username: "ci", password: "correct horse battery staple", role: "viewer" }
  expect((await call(cp, cp.adminToken, "POST", "/api/users", user)).status).toBe(409)
  const { id } = (await made.json()) as { id: string }
  expect((await call(cp, cp.adminToken, "DELETE", `/api/tokens/${id}`)).status).toBe(200)
  expect((await call(cp, cp.adminToken, "POST", "/api/users", user)).status).toBe(201)
})

test("neither a token nor a user is named as the caller with no credential, whose refused knocks read `anonymous`", async () => {
  for (const name of ["anonymous", "Anonymous", "anonymous "]) {
    const res = await makeToken(name)
    expect({ name, status: res.status }).toEqual({ name, status: 409 })
    expect(((await res.json()) as { error: string }).error).toContain("would read as theirs")
  }
  const user = { username: "anonymous", password: "correct horse battery staple", role: "admin" }
  const res = await call(cp, cp.adminToken, "POST", "/api/users", user)
  expect(res.status).toBe(409)
  expect(((await res.json()) as { error: string }).error).toContain("would read as theirs")
})
