// bin/chimera and bin/chimera-agent (the checkout's programs, run from source) in a directory someone
// else wrote: Bun reads .env and bunfig.toml from the directory it starts in, and a bunfig's preload
// runs code. Neither wrapper may read either (the compiled programs: tests/web-dashboard-binary.test.ts).
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

const ROOT = join(import.meta.dir, "..")
let hostile: string

beforeAll(async () => {
  hostile = await mkdtemp(join(tmpdir(), "chimera-hostile-checkout-"))
  await mkdir(join(hostile, "home"))
  await writeFile(join(hostile, "preload.js"), 'console.error("PRELOAD RAN")\n')
  await writeFile(join(hostile, "bunfig.toml"), 'preload = ["./preload.js"]\n')
  await writeFile(join(hostile, ".env"), "CHIMERA_URL=http://127.0.0.1:9\nCHIMERA_TOKEN=from-dotenv\n")
})
afterAll(async () => {
  await rm(hostile, { recursive: true, force: true })
})

async function inHostile(cmd: string[]): Promise<string> {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: join(hostile, "home"), NO_COLOR: "1" }
  const p = Bun.spawn(cmd, { cwd: hostile, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" })
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
  return out + err
}

test("bin/chimera runs no preload and reads no .env from the directory it is started in", async () => {
  const out = await inHostile([join(ROOT, "bin/chimera"), "whoami"])
  expect(out).not.toContain("PRELOAD RAN")
  // No token from .env: it asks for one instead of dialling the .env's address.
  expect(out).toContain("no token")
  expect(out).not.toContain("127.0.0.1:9")
}, 30_000)

test("bin/chimera-agent runs no preload from the directory it is started in", async () => {
  const out = await inHostile([join(ROOT, "bin/chimera-agent"), "--version"])
  expect(out).not.toContain("PRELOAD RAN")
  expect(out.trim()).toMatch(/^\d+\.\d+\.\d+$/)
}, 30_000)
