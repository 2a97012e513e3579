// What an operator reads when a target cannot be reached: the reason, and for a bare name that resolves
// nowhere, that no node of the configuration is named so either (it was tried as a host name).
import { expect, test } from "bun:test"
import { classify } from "./failure.ts"
import { parseTarget } from "./target.ts"

const notFound = Object.assign(new Error("getaddrinfo ENOTFOUND node-9"), { code: "ENOTFOUND" })

test("a bare name that resolves nowhere says no node of the configuration has that name", () => {
  const failure = classify(parseTarget("node-9"), notFound, "~/.ssh/id_ed25519", 10_000)
  expect(failure.kind).toBe("unreachable")
  expect(failure.message).toBe(
    'node-9: cannot reach root@node-9:22: host name not found; no node of the configuration in use is named "node-9" either (see [fleet.nodes] and CHIMERA_CONFIG_FILE)',
  )
})

test("an address or user@host that resolves nowhere is only that", () => {
  const failure = classify(parseTarget("root@web.example"), notFound, "~/.ssh/id_ed25519", 10_000)
  expect(failure.message).toBe("root@web.example: cannot reach root@web.example:22: host name not found")
})

test("a target named by its full address says it once", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.7:2222"), { code: "ECONNREFUSED" })
  const failure = classify(parseTarget("root@10.0.0.7:2222"), refused, "~/.ssh/id_ed25519", 10_000)
  expect(failure).toEqual({
    kind: "unreachable",
    message: expect.stringMatching(/^root@10\.0\.0\.7:2222: connection refused/),
  })
  expect(failure.message.split("10.0.0.7")).toHaveLength(2)
})
