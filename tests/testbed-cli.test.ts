// scripts/testbed.ts is typed by hand from the README: a mistyped flag or command is said in one line
// with the usage, as its other refusals are, never as a stack trace; a testbed already up where a new
// one would go (on a shared machine, maybe someone else's) is answered with the way to a second one.
import { expect, test } from "bun:test"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
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

test("up where a testbed is already up offers another directory as well as taking that one down", async () => {
  await using dir = await ownDir()
  await Bun.write(
    join(dir.path, "testbed.json"),
    JSON.stringify({ dir: dir.path, createdAt: "", identityFile: "", knownHostsFile: "", configFile: "", nodes: [] }),
  )
  const r = await testbed("up", "--dir", dir.path)
  expect(r.code).toBe(1)
  expect(r.stderr).toStartWith(
    `testbed: a testbed is already up in ${dir.path}: \`bun scripts/testbed.ts down --dir ${dir.path}\` first if it is yours, or start another with --dir DIR (or CHIMERA_TESTBED_DIR)\n`,
  )
})

/** A directory of this user's alone, as the testbed keeps its own; removed when disposed. */
async function ownDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await mkdtemp(join(tmpdir(), "chimera-testbed-cli-"))
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) }
}
