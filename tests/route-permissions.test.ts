// Every route the app serves (cp.routes, straight from Hono's table) has a
// rule in control/api/route-permissions.ts, and each rule is enforced: without a token 401 (the public
// routes aside), with a token that lacks the permission 403, with one that holds it neither.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { ROUTE_RULES, type RouteRule } from "../control/api/route-permissions.ts"
import { leastRoleFor, type Permission, Role } from "../control/domain/auth/roles.ts"
import { addUser, call, enrollNode, heartbeatBody, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"

// Every route, twice for each role: about ten seconds, past bun test's own five.
setDefaultTimeout(60_000)

let cp: TestControlPlane
let node: string
let joinToken: string

beforeAll(async () => {
  cp = await startInProcess()
  for (const role of Role.options) await addUser(cp, role, role)
  node = await enrollNode(cp, "n1")
  await enrollNode(cp, "n2")
  joinToken = (
    (await (await call(cp, cp.adminToken, "POST", "/api/nodes/join-tokens", {})).json()) as { token: string }
  ).token
})
afterAll(async () => {
  await cp.stop()
})

const BODIES: Record<string, unknown> = {
  "POST /api/auth/login": { username: "viewer", password: "wrong password here" },
  "POST /api/auth/verify": { token: "eyJhbGciOiJub25lIn0.e30." },
  "POST /api/agent/:nodeId/heartbeat": heartbeatBody("n1"),
  "POST /api/agent/enroll": { nodeId: "n3", agentVersion: "t" },
  // A relative cwd is refused (422) after the permission checks, so no tool is started.
  "POST /api/cli/sessions": { cli_tool: "claude", cwd: "relative" },
  "POST /api/cli/sessions/:sessionId/input": { command: "true" },
}

const concrete = (path: string) =>
  path
    .replace(":nodeId", "n1")
    .replace(":id", "ghost")
    .replace(":username", "ghost")
    .replace(":sessionId", "ghost")
    .replace(":provider", "bash")

async function send(key: string, token: string | null): Promise<number> {
  const [method = "", path = ""] = key.split(" ")
  const res = await call(cp, token, method, concrete(path), BODIES[key])
  await res.body?.cancel()
  return res.status
}

/** A fresh session of `role`, since some routes (revoke, refresh) end the session that calls them. */
const sessionOf = (role: Role) => login(cp, role)

/** The roles below the least one holding the permission (a 403 each). */
const rolesLacking = (p: Permission) => Role.options.slice(0, Role.options.indexOf(leastRoleFor(p)))

describe("route permissions", () => {
  test("every served route has exactly one rule, and every rule a served route", () => {
    const served = cp.routes.map((r) => `${r.method} ${r.path}`).sort()
    expect(Object.keys(ROUTE_RULES).sort()).toEqual(served)
  })

  test("without a token every route answers 401, but the two health routes and a wrong login", async () => {
    for (const { method, path } of cp.routes) {
      const key = `${method} ${path}`
      const status = await send(key, null)
      if (key === "GET /api/health" || key === "GET /api/health/live") expect(status).toBe(200)
      else expect(`${key} -> ${status}`).toBe(`${key} -> 401`)
    }
  })

  test("with a token lacking the route's permission 403; with one holding it neither 401 nor 403", async () => {
    for (const { method, path } of cp.routes) {
      const key = `${method} ${path}`
      const rule = ROUTE_RULES[key] as RouteRule
      if (rule.auth === "public") continue
      if (rule.auth === "join") {
        expect(`${key} as admin -> ${await send(key, cp.adminToken)}`).toBe(`${key} as admin -> 403`)
        expect(`${key} as node -> ${await send(key, node)}`).toBe(`${key} as node -> 403`)
        expect([401, 403]).not.toContain(await send(key, joinToken))
        continue
      }
      if (rule.auth === "node") {
        for (const [who, token] of [
          ["admin", cp.adminToken],
          ["viewer session", await sessionOf("viewer")],
        ] as const)
          expect(`${key} as ${who} -> ${await send(key, token)}`).toBe(`${key} as ${who} -> 403`)
        expect(`${key} as n2's credential -> ${await send(key, await enrollNode(cp, "n2"))}`).toBe(
          `${key} as n2's credential -> 403`,
        )
        expect([401, 403]).not.toContain(await send(key, node))
        continue
      }
      expect(`${key} as a node -> ${await send(key, node)}`).toBe(`${key} as a node -> 403`)
      for (const role of rolesLacking(rule.auth))
        expect(`${key} as ${role} -> ${await send(key, await sessionOf(role))}`).toBe(`${key} as ${role} -> 403`)
      const least = leastRoleFor(rule.auth)
      const status = await send(key, await sessionOf(least))
      expect(`${key} as ${least} -> ${[401, 403].includes(status) ? status : "allowed"}`).toBe(
        `${key} as ${least} -> allowed`,
      )
      const admin = await send(key, cp.adminToken)
      expect(`${key} as the bootstrap admin -> ${[401, 403].includes(admin) ? admin : "allowed"}`).toBe(
        `${key} as the bootstrap admin -> allowed`,
      )
    }
  })
})

describe("a method a path is not served with", () => {
  test("is a 405 naming the methods it takes, once the caller is admitted", async () => {
    const patch = await call(cp, cp.adminToken, "PATCH", "/api/nodes")
    expect(patch.status).toBe(405)
    expect(patch.headers.get("allow")).toBe("GET, HEAD")
    expect(((await patch.json()) as { code: string; error: string }).error).toBe(
      "/api/nodes does not take PATCH; it takes GET, HEAD",
    )
    const one = await call(cp, cp.adminToken, "PUT", "/api/nodes/n1")
    expect(one.status).toBe(405)
    expect(one.headers.get("allow")?.split(", ").sort()).toEqual(["DELETE", "GET", "HEAD"])
    await one.body?.cancel()
    // A node at its own agent route: the fast path passes on a method it does not take.
    const beat = await call(cp, node, "GET", "/api/agent/n1/heartbeat")
    expect(beat.status).toBe(405)
    expect(beat.headers.get("allow")).toBe("POST")
    await beat.body?.cancel()
    // No route of that shape: a 404; no credential: a 401, whatever the method.
    const missing = await call(cp, cp.adminToken, "PATCH", "/api/nothing-here")
    expect(missing.status).toBe(404)
    await missing.body?.cancel()
    const anonymous = await call(cp, null, "PATCH", "/api/nodes")
    expect(anonymous.status).toBe(401)
    await anonymous.body?.cancel()
  })
})
