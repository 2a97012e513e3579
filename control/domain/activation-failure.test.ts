// What a failed activation is said to mean: a refusal by the node's claim changed nothing, but a
// switch that failed with the claim's exit code (75, EX_TEMPFAIL, which a switch may give too) did.
import { expect, test } from "bun:test"
import { activationFailure } from "./activation-failure.ts"
import { BUSY_EXIT, BUSY_SAYS } from "./node-claim.ts"
import type { ExecResult } from "./operation-ports.ts"

const o = { target: "web-1", confirmSeconds: 30, activationSeconds: 300 }
const target = { name: "web-1", user: "root", host: "127.0.0.11", port: 22 }
const exited = (exitCode: number, stderr: string): ExecResult => ({
  target,
  ok: false,
  exitCode,
  stdout: "previous 1 /nix/store/x",
  stderr,
  ms: 1,
})

test("a refusal by the node's claim says nothing was changed; a switch that exited 75 is a failure to roll back", () => {
  const refused = activationFailure(exited(BUSY_EXIT, `${BUSY_SAYS}: d-other`), o)
  expect(refused.kind).toBe("refused")
  expect(refused.why).toContain("nothing was changed")
  const failed = activationFailure(exited(BUSY_EXIT, "activation failed: unit foo.service did not start"), o)
  expect(failed).toEqual({
    kind: "failed",
    why: "activate: exited 75: activation failed: unit foo.service did not start",
  })
})
