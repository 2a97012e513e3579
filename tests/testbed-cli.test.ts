// scripts/testbed.ts is typed by hand from the README: a mistyped flag or command is said in one line
// with the usage, as its other refusals are, never as a stack trace.
import { expect, test } from "bun:test"
import { join } from "node:path"
import { run } from "./support/tools.ts"

const TESTBED = join(import.meta.dir, "../scripts/testbed.ts")
const testbed = (...args: string[]) => run([process.execPath, TESTBED, ...args])

test("an unknown flag is refused with its name and the usage, not a stack trace", async () => {
  const r = await testbed("up", "--node", "3")
  expect(r.code).toBe(1)
  expect(r.stderr).toStartWith("testbed: unknown option --node (did you mean --nodes?)\nusage: bun scripts/testbed.ts")
  expect(r.stderr).not.toContain("at ")
})

test("a flag that needs a value and has none is refused the same way", async () => {
  const r = await testbed("up", "--nodes")
  expect(r.code).toBe(1)
  expect(r.stderr).toStartWith("testbed: --nodes needs a value\nusage:")
})
