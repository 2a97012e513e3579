// scripts/testbed.ts keeps a key that is root on every test node (and so on this host) in its
// directory, /tmp/chimera-testbed by default: a directory another user made, one open to others, or a
// symbolic link is refused by `up`, `status` and `down` before anything is read from it or written to it.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { chmodSync, chownSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { run } from "./support/tools.ts"

const TESTBED = join(import.meta.dir, "../scripts/testbed.ts")
const NOBODY = 65534
let root: string

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "chimera-testbed-dir-"))
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

const testbed = (...args: string[]) => run([process.execPath, TESTBED, ...args])

test("a directory another user made is refused, and nothing is written into it", async () => {
  const dir = join(root, "planted")
  mkdirSync(dir, { mode: 0o777 })
  chmodSync(dir, 0o777)
  // Files of theirs, waiting: an empty key file for root to fill, a state naming a process to kill.
  writeFileSync(join(dir, "id_ed25519"), "")
  chownSync(join(dir, "id_ed25519"), NOBODY, NOBODY)
  chownSync(dir, NOBODY, NOBODY)
  for (const action of ["up", "status", "down"]) {
    const r = await testbed(action, "--nodes", "1", "--dir", dir)
    expect({ action, code: r.code }).toEqual({ action, code: 1 })
    expect(r.stderr).toContain(`${dir} belongs to uid ${NOBODY}, not to this user`)
  }
  expect(Bun.file(join(dir, "id_ed25519")).size).toBe(0)
}, 60_000)

test("this user's directory left open to others is refused too, and so is a symbolic link", async () => {
  const open = join(root, "open")
  mkdirSync(open)
  chmodSync(open, 0o755)
  const r = await testbed("up", "--nodes", "1", "--dir", open)
  expect(r.code).toBe(1)
  expect(r.stderr).toContain(`${open} is open to other users (mode 755)`)
  expect(existsSync(join(open, "id_ed25519"))).toBe(false)

  const link = join(root, "link")
  const target = join(root, "elsewhere")
  mkdirSync(target, { mode: 0o700 })
  symlinkSync(target, link)
  const l = await testbed("up", "--nodes", "1", "--dir", link)
  expect(l.code).toBe(1)
  expect(l.stderr).toContain(`${link} is not a directory of its own`)
  expect(existsSync(join(target, "id_ed25519"))).toBe(false)
}, 60_000)
