// A mistyped command is answered in plain words: citty's own messages colour the name it did not
// know, and that colour must neither show up as escaped text (`\x1b[36mbogus\x1b[39m`) where colour is
// off, nor reach a terminal when NO_COLOR is set. The real CLI process, its stderr read as it is.
import { expect, test } from "bun:test"
import { join } from "node:path"
import { run } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

test("an unknown command or subcommand is named plainly, with no escape codes, coloured or escaped", async () => {
  const env = { NO_COLOR: undefined, FORCE_COLOR: undefined }
  for (const args of [["bogus"], ["notify", "bogus"], ["nodes", "bogus"]]) {
    const r = await run([process.execPath, MAIN, ...args], { env })
    expect({ args, code: r.code }).toEqual({ args, code: 1 })
    expect(r.stderr).toContain("Unknown command bogus")
    expect(r.stderr).not.toContain("\\x1b")
    expect(r.stderr).not.toContain("\x1b")
  }
}, 60_000)
