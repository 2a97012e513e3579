// The request id is the control plane's: each request gets a new one, echoed as X-Request-Id and
// written on its audit row and log lines. A client's X-Request-Id is not taken, so no caller can give
// its request the id of another principal's (the audit trail's rows then each have one of their own),
// and nothing a client puts in the header reaches a row, a log line or an answer's headers.
import { expect, test } from "bun:test"
import { call } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

test("two principals sending the same X-Request-Id get audit rows with ids of their own, each echoed back", async () => {
  await using cp = await startInProcess()
  const minted = await call(cp, cp.adminToken, "POST", "/api/tokens", { name: "second-admin", role: "admin" })
  const { token: second } = (await minted.json()) as { token: string }
  const send = (token: string, requestId: string) =>
    fetch(`${cp.url}/api/nodes/join-tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "x-request-id": requestId },
      body: "{}",
    })
  const given = ["shared-id-1", "shared-id-1", "x".repeat(65), "a b\u00e9"]
  const answers = await Promise.all(given.map((id, i) => send(i % 2 === 0 ? cp.adminToken : second, id)))
  expect(answers.map((r) => r.status)).toEqual([201, 201, 201, 201])
  const echoed = answers.map((r) => r.headers.get("x-request-id") ?? "")
  for (const id of echoed) expect(id).toMatch(UUID)
  expect(new Set(echoed).size).toBe(given.length)

  const { entries } = (await (await cp.api("/api/audit")).json()) as {
    entries: { requestId: string; actor: string }[]
  }
  const rows = entries.filter((e) => echoed.includes(e.requestId))
  expect(rows).toHaveLength(given.length)
  expect(entries.some((e) => given.includes(e.requestId))).toBe(false)
})
