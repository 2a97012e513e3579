// `chimera mcp` on a port another program holds says what to do, as `chimera web` does, instead of
// failing as something unexpected.
import { expect, test } from "bun:test"
import { join } from "node:path"

const MAIN = join(import.meta.dir, "../control/main.ts")

test("a port already taken is refused with the flag and setting that choose another", async () => {
  using held = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") })
  const mcp = Bun.spawn([process.execPath, MAIN, "mcp", "--host", "127.0.0.1", "--port", String(held.port)], {
    env: { ...process.env, CHIMERA_URL: "http://127.0.0.1:9", CHIMERA_CONFIG_FILE: "" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  // Started, it would serve until stopped: a few seconds are plenty to fail.
  const timer = setTimeout(() => mcp.kill("SIGKILL"), 15_000)
  const code = await mcp.exited
  clearTimeout(timer)
  const stderr = await new Response(mcp.stderr).text()
  expect({ code, signal: mcp.signalCode }).toEqual({ code: 1, signal: null })
  expect(stderr).toStartWith(`error 127.0.0.1:${held.port} is already in use`)
  expect(stderr).toContain("--port N (or [mcp] port in the config file)")
  expect(stderr).toContain("http://127.0.0.1:N/mcp")
  expect(stderr).not.toContain("unexpected failure")
}, 30_000)
