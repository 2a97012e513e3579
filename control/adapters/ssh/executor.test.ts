// Unit tests for the parts of the executor that need no server; tests/ssh.test.ts runs it against
// real sshd nodes.
import { expect, test } from "bun:test"
import { createSshExecutor } from "./executor.ts"
import { parseSystemState } from "./system-state.ts"

test("system state lines become store paths, and a missing link becomes null", () => {
  const p = "/nix/store/x1amgwgalc4d2fjfnyv8r50l7z6c20vs-chimera-test-system-1"
  expect(parseSystemState(`${p}\n${p}\n\n`)).toEqual({ profile: p, current: p, booted: null })
  expect(parseSystemState("")).toEqual({ profile: null, current: null, booted: null })
})

test("a missing key is a per-target auth failure that says how to give one, not a throw", async () => {
  const exec = createSshExecutor({ env: { HOME: "/nonexistent-home" }, timeoutMs: 2000 })
  const target = { name: "web-1", user: "root", host: "127.0.0.1", port: 1 }
  const [r] = await exec.execMany([target], "true")
  expect(r?.ok).toBe(false)
  expect(r?.failure?.kind).toBe("auth-failed")
  expect(r?.failure?.message).toContain("pass --identity FILE")
  await exec.close()
})
