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
  child.kill("SIGINT")
  // Run to its end, it would print so and exit 0 (the spinner's listener alone keeps it alive).
  expect(await child.exited).toBe(130)
  expect(await new Response(child.stderr).text()).toContain("interrupted: left behind: nothing")
  expect(await reader.read()).toMatchObject({ done: true })
}, 30_000)
