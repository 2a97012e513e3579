#!/usr/bin/env bun
// Turns a JUnit XML report (as `bun test --reporter=junit` writes it) into the one line CI reads:
//
//   bun scripts/junit-summary.ts junit.xml [--console test-output.log] [--test-exit CODE]
//
// The LAST line printed is always `N passed, N failed` (plus `, N skipped` when some were skipped);
// notes that explain it come before it. Failed counts <failure> and <error> test cases. Exits 1 when
// any test failed, when the report is missing or holds no test, or when --test-exit is not 0.
//
// --console: bun's own console output of the same run. A test file that fails to load is counted in
// bun's tally ("N fail") but has no <testcase> in the report, so the larger failure count wins.
// --test-exit: the exit code of the test command, so a run that failed outside any test still fails.
import { existsSync, readFileSync } from "node:fs"
import { parseArgs } from "node:util"

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { console: { type: "string" }, "test-exit": { type: "string" } },
})
const report = positionals[0] ?? "junit.xml"

interface Tally {
  passed: number
  failed: number
  skipped: number
}

/** Counts <testcase> elements; a case is failed if it holds <failure> or <error>, skipped if <skipped>. */
function fromJUnit(xml: string): Tally {
  const tally: Tally = { passed: 0, failed: 0, skipped: 0 }
  // Attribute values are entity-escaped, so `>` and `<` in them cannot end or start a tag.
  for (const match of xml.matchAll(/<testcase\b[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = match[1] ?? ""
    if (/<(failure|error)\b/.test(body)) tally.failed++
    else if (/<skipped\b/.test(body)) tally.skipped++
    else tally.passed++
  }
  return tally
}

/** bun test's closing tally (` 3 pass`, ` 1 fail`, …), the last one in the log; null if there is none. */
function fromConsole(log: string): Tally | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
  const text = log.replace(/\x1b\[[0-9;]*m/g, "")
  const last = (word: string): number | null => {
    const all = [...text.matchAll(new RegExp(`^\\s*(\\d+) ${word}$`, "gm"))]
    const hit = all.at(-1)
    return hit ? Number(hit[1]) : null
  }
  const [pass, fail, skip, todo] = [last("pass"), last("fail"), last("skip"), last("todo")]
  if (pass === null && fail === null) return null
  return { passed: pass ?? 0, failed: fail ?? 0, skipped: (skip ?? 0) + (todo ?? 0) }
}

const notes: string[] = []
let tally: Tally = { passed: 0, failed: 0, skipped: 0 }
let ok = true

const consoleTally =
  values.console && existsSync(values.console) ? fromConsole(readFileSync(values.console, "utf8")) : null
if (existsSync(report)) {
  tally = fromJUnit(readFileSync(report, "utf8"))
  if (consoleTally && consoleTally.failed > tally.failed) {
    notes.push(
      `${consoleTally.failed - tally.failed} failure(s) outside any test case (e.g. a file that failed to load): see the output above`,
    )
    tally.failed = consoleTally.failed
  }
} else {
  notes.push(`no JUnit report at ${report}`)
  ok = false
  if (consoleTally) {
    notes.push("counts below are from bun's console output")
    tally = consoleTally
  }
}

const total = tally.passed + tally.failed + tally.skipped
if (existsSync(report) && total === 0) {
  notes.push(`the report ${report} holds no test`)
  ok = false
}
const testExit = values["test-exit"]
if (testExit !== undefined && testExit !== "0") {
  notes.push(`the test command exited ${testExit}`)
  ok = false
}
if (tally.failed > 0) ok = false

for (const note of notes) console.log(`junit-summary: ${note}`)
console.log(`${tally.passed} passed, ${tally.failed} failed${tally.skipped > 0 ? `, ${tally.skipped} skipped` : ""}`)
process.exit(ok ? 0 : 1)
