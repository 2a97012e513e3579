// Ctrl-C during a command that shows a spinner: the spinner's own SIGINT listener must not keep the
// command running to its end; it ends at once with 130 and says what it leaves behind.
import { expect, test } from "bun:test"
import { join } from "node:path"

test("SIGINT beside a running spinner ends the process with 130 and the message", async () => {
  const script = `
    import * as p from "@clack/prompts"
    import { exitOnInterrupt } from ${JSON.stringify(join(import.meta.dir, "interrupt.ts"))}
    const spin = p.spinner({ output: process.stderr })
    spin.start("waiting")
    exitOnInterrupt(() => "left behind: nothing")
    process.stdout.write("ready\\n")
    await Bun.sleep(20_000)
    process.stdout.write("ran to its end\\n")
  `
  const child = Bun.spawn([process.execPath, "-e", script], {
    cwd: join(import.meta.dir, "../.."),
    env: { ...process.env, NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  })
  const reader = child.stdout.getReader()
  const first = await reader.read()
  expect(new TextDecoder().decode(first.value)).toBe("ready\n")
  const t0 = performance.now()
  child.kill("SIGINT")
  expect(await child.exited).toBe(130)
  expect(performance.now() - t0).toBeLessThan(5_000)
  expect(await new Response(child.stderr).text()).toContain("interrupted: left behind: nothing")
}, 30_000)
