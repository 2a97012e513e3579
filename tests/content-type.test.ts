// Every route that reads a JSON body requires `Content-Type: application/json` (a charset may follow)
// and answers anything else, a missing header included, with a 415 that says what to send. A body is
// never taken for JSON on a guess. The agent's client and the CLI's typed client always send it (their
// own suites, agent/*.test.ts and tests/cli-auth.test.ts, run them against a real control plane).
import { describe, expect, test } from "bun:test"
import { enrollNode, heartbeatBody } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"

describe("JSON bodies need their Content-Type", () => {
  test("a body with no Content-Type or another media type is a 415 on every kind of route; JSON with a charset is fine", async () => {
    await using cp = await startInProcess()
    const credential = await enrollNode(cp, "n1")
    const joinToken = (
      (await (await cp.api("/api/nodes/join-tokens", { method: "POST", body: "{}" })).json()) as { token: string }
    ).token
    const cases = [
      { path: "/api/tokens", token: cp.adminToken, body: { name: "ci", role: "viewer" }, ok: 201 },
      {
        path: "/api/users",
        token: cp.adminToken,
        body: { username: "kim", password: "a long password", role: "viewer" },
        ok: 201,
      },
      { path: "/api/nodes/n1/desired", method: "PUT", token: cp.adminToken, body: { closure: GEN1 }, ok: 200 },
      { path: "/api/auth/login", token: null, body: { username: "kim", password: "a long password" }, ok: 200 },
      { path: "/api/agent/n1/heartbeat", token: credential, body: heartbeatBody("n1"), ok: 200 },
      {
        path: "/api/agent/enroll",
        token: joinToken,
        body: { nodeId: "n2", hostname: "h", agentVersion: "1" },
        ok: 201,
      },
    ]
    for (const c of cases) {
      const send = (type: string | null) =>
        fetch(`${cp.url}${c.path}`, {
          method: c.method ?? "POST",
          headers: {
            ...(c.token ? { authorization: `Bearer ${c.token}` } : {}),
            ...(type === null ? {} : { "content-type": type }),
          },
          body: JSON.stringify(c.body),
        })
      for (const type of [null, "", "text/plain", "application/x-www-form-urlencoded"]) {
        // fetch labels a string body text/plain itself; a Blob with no type goes without the header.
        const res =
          type === null
            ? await fetch(`${cp.url}${c.path}`, {
                method: c.method ?? "POST",
                headers: c.token ? { authorization: `Bearer ${c.token}` } : {},
                body: new Blob([JSON.stringify(c.body)]),
              })
            : await send(type)
        expect(`${c.path} ${type}: ${res.status}`).toBe(`${c.path} ${type}: 415`)
        const body = (await res.json()) as { code: string; error: string }
        expect(body.code).toBe("UNSUPPORTED_MEDIA_TYPE")
        expect(body.error).toContain("Content-Type: application/json")
        if (type === null || type === "") expect(body.error).toContain("got no Content-Type")
      }
      const res = await send("application/json; charset=utf-8")
      expect(`${c.path}: ${res.status}`).toBe(`${c.path}: ${c.ok}`)
    }
  })

  test("nothing is done for a body without its Content-Type", async () => {
    await using cp = await startInProcess()
    const res = await fetch(`${cp.url}/api/tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${cp.adminToken}` },
      body: new Blob([JSON.stringify({ name: "sneaky", role: "admin" })]),
    })
    expect(res.status).toBe(415)
    const tokens = (await (await cp.api("/api/tokens")).json()) as { tokens: { name: string }[] }
    expect(tokens.tokens.map((t) => t.name)).not.toContain("sneaky")
  })
})
