// The CLI's output layer is the one place text from nodes and users is made safe for the terminal, so
// no command may write around it. The exceptions hand the terminal to something the operator chose to
// run themselves, as ssh does: a tmux pane (`attach`) and their own command's output (`run`), plus
// citty's usage text and the version, which are ours.
import { describe, expect, test } from "bun:test"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { firstControl } from "../../tests/support/terminal.ts"
import { field, jsonLine, prefixed, printTable } from "./output.ts"

const WRITES_ITS_OWN = new Set(["output.ts", "attach.ts", "run-command.ts", "run.ts"])
const DIRECT = /process\.(stdout|stderr)\.write\(|console\.(log|error|warn|info)\(/

describe("CLI output", () => {
  test("no command writes to stdout or stderr but through output.ts", () => {
    const files = readdirSync(import.meta.dir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    expect(files.length).toBeGreaterThan(20)
    const around = files
      .filter((f) => !WRITES_ITS_OWN.has(f))
      .flatMap((f) =>
        readFileSync(join(import.meta.dir, f), "utf8")
          .split("\n")
          .map((line, i) => [`${f}:${i + 1}`, line] as const)
          .filter(([, line]) => DIRECT.test(line))
          .map(([where]) => where),
      )
    expect(around).toEqual([])
    // run.ts may write usage and the version itself, but its error line goes through `warn`.
    const runTs = readFileSync(join(import.meta.dir, "run.ts"), "utf8")
    expect(runTs.match(/process\.(stdout|stderr)\.write\(/g)).toHaveLength(3)
    expect(runTs).toMatch(/warn\(`\$\{color\.red\("error"\)\}/)
  })

  test("a table cell and a field show a node's escape sequences and newlines escaped", async () => {
    const written: string[] = []
    const real = process.stdout.write.bind(process.stdout)
    process.stdout.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stdout.write
    try {
      printTable(["NODE", "AGENT"], [["web-1", "\x1b]0;owned\x07v1\r\n2026-01-01 INFO forged"]])
    } finally {
      process.stdout.write = real
    }
    const text = written.join("")
    expect(firstControl(text)).toBeNull()
    expect(text.split("\n")).toHaveLength(3) // header, one row, the final newline
    expect(text).toContain("\\x1b]0;owned\\x07v1\\r\\n2026-01-01 INFO forged")
    expect(field("a\u202eb")).toBe("a\\u202eb")
    expect(prefixed("web-1", "ok\rgone\n", "|")).toBe("web-1 | ok\\rgone\n")
  })

  test("--json stays JSON, with C1, DEL and bidi characters as \\u escapes", () => {
    const value = { agentVersion: "\x1b[2J\x9b2J\x7f\u202e", n: 1 }
    const line = jsonLine(value)
    expect(line).toBe('{"agentVersion":"\\u001b[2J\\u009b2J\\u007f\\u202e","n":1}')
    expect(JSON.parse(line)).toEqual(value)
  })
})
