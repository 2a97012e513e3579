// scripts/perf-map.ts against a real jitdump: a Bun process run with BUN_JSC_useJITDump=true, whose
// JavaScript must come out named in the perf map, and anything else refused with a clear message.
import { afterAll, expect, test } from "bun:test"
import { readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

const ROOT = join(import.meta.dir, "..")
const made: string[] = []
afterAll(async () => {
  for (const file of made) await rm(file, { force: true })
})

const run = (args: string[], env: Record<string, string> = {}) =>
  Bun.spawnSync([process.execPath, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stderr: "pipe" })

test("names the JavaScript a process compiled, from its jitdump", async () => {
  const script = join(tmpdir(), `perf-map-${process.pid}.js`)
  made.push(script)
  // Run until the optimizing tier has compiled it (the JIT compiles on its own thread), then make more
  // code until its record is in the file: the runtime buffers the dump and does not flush it at exit.
  await writeFile(
    script,
    [
      "const { numberOfDFGCompiles } = require('bun:jsc')",
      "const { readdirSync, readFileSync } = require('node:fs')",
      "function hotLoop(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s }",
      "const until = Date.now() + 30000",
      // Asked before the function first ran, numberOfDFGCompiles says 1: run it first.
      "do hotLoop(10000); while (numberOfDFGCompiles(hotLoop) < 1 && Date.now() < until)",
      "const dump = () => readdirSync('/tmp').find((f) => f.startsWith('jit-') && f.includes('-' + process.pid + '-'))",
      "const written = () => { const f = dump(); return f !== undefined && readFileSync('/tmp/' + f).includes('hotLoop') }",
      "for (let f = 0; !written() && Date.now() < until; f++) { const g = new Function('n', 'let s = ' + f + '; for (let i = 0; i < n; i++) s += i % 3; return s'); for (let k = 0; k < 3; k++) g(2000) }",
      "console.log(process.pid)",
    ].join("\n"),
  )
  const child = run([script], { BUN_JSC_useJITDump: "true" })
  expect(child.exitCode).toBe(0)
  const pid = child.stdout.toString().trim()
  const dump = (await readdir("/tmp")).find((f) => f.startsWith("jit-") && f.includes(`-${pid}-`))
  if (!dump) throw new Error(`no /tmp/jit-*-${pid}-* was written: does this Bun still honour BUN_JSC_useJITDump?`)
  made.push(join("/tmp", dump), `/tmp/perf-${pid}.map`)

  const mapped = run(["scripts/perf-map.ts", "--kinds", join("/tmp", dump)])
  expect(mapped.exitCode).toBe(0)
  expect(mapped.stdout.toString()).toContain(`/tmp/perf-${pid}.map`)
  const map = (await readFile(`/tmp/perf-${pid}.map`, "utf8")).trim().split("\n")
  for (const line of map) expect(line).toMatch(/^[0-9a-f]+ [0-9a-f]+ \S/)
  expect(map.filter((line) => line.includes("hotLoop")).join("\n")).toMatch(/JSC-(DFG|FTL|Baseline): hotLoop#/)
})

test("refuses a file that is not a jitdump, and a missing argument, with what to do", () => {
  const wrong = run(["scripts/perf-map.ts", join(ROOT, "package.json")])
  expect(wrong.exitCode).toBe(1)
  expect(wrong.stderr.toString()).toContain("not a jitdump file (run the process with BUN_JSC_useJITDump=true)")
  const none = run(["scripts/perf-map.ts"])
  expect(none.exitCode).toBe(2)
  expect(none.stderr.toString()).toContain("usage: bun scripts/perf-map.ts")
  const unknown = run(["scripts/perf-map.ts", "--kind", "/tmp/x"])
  expect(unknown.exitCode).toBe(2)
  expect(unknown.stderr.toString()).toContain("Unknown option '--kind'")
  expect(unknown.stderr.toString()).not.toMatch(/^\s+at /m)
})
