// The runner under every heal step: a step that hangs is killed at its limit, children included, and
// fails with a message that says so, instead of leaving the node `healing` for ever.
import { describe, expect, test } from "bun:test"
import { runCommand } from "./nix-system.ts"

describe("heal step runner", () => {
  test("a command that finishes gives its exit code and output", async () => {
    expect(await runCommand(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], 10)).toEqual({
      code: 3,
      output: "out\nerr",
    })
  })

  test("a command past its limit is killed with the children holding its output, and says so", async () => {
    const t0 = performance.now()
    // The background sleep keeps stdout open: killing only the shell would leave the pipe waiting.
    const result = await runCommand(["/bin/sh", "-c", "echo started; sleep 30 & sleep 30"], 0.5)
    expect(performance.now() - t0).toBeLessThan(10_000)
    expect(result.code).toBe(124)
    expect(result.output).toBe("started\n[chimera: /bin/sh killed after 0.5 s]")
  }, 20_000)

  test("a program that does not exist is exit code 127 with a message, not a throw", async () => {
    const result = await runCommand(["/nonexistent/chimera-step"], 10)
    expect(result.code).toBe(127)
    expect(result.output).toContain("/nonexistent/chimera-step")
  })
})
