// The agent's HTTP client against a local server that speaks the control plane's wire format.
import { afterAll, describe, expect, test } from "bun:test"
import { ControlError, createControlClient } from "./control-client.ts"

const seen: string[] = []
// A long poll that answers after a moment: 401 to the credential a rotation retires, empty to the other.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const bearer = req.headers.get("authorization")?.slice("Bearer ".length) ?? ""
    seen.push(bearer)
    await Bun.sleep(100)
    if (bearer === "chn_old")
      return Response.json(
        { error: "the node credential was revoked or replaced", code: "AUTHENTICATION_FAILED" },
        { status: 401 },
      )
    return Response.json({ commands: [] })
  },
})
afterAll(() => server.stop(true))

describe("control client", () => {
  test("a call refused because rotation replaced its credential while it was out is made again with the new one", async () => {
    seen.length = 0
    let current = "chn_old"
    const client = createControlClient({ baseUrl: server.url.href, nodeId: "n1", credential: () => current })
    const polled = client.fetchCommands(1)
    await Bun.sleep(20)
    current = "chn_new"
    expect(await polled).toEqual({ commands: [], unsupported: [], cancel: [] })
    expect(seen).toEqual(["chn_old", "chn_new"])
  })

  test("a credential refused while still the agent's own is reported as refused, not retried", async () => {
    seen.length = 0
    const client = createControlClient({ baseUrl: server.url.href, nodeId: "n1", credential: () => "chn_old" })
    const error = await client.fetchCommands(1).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ControlError)
    expect((error as ControlError).refused).toBe(true)
    expect(seen).toEqual(["chn_old"])
  })
})
