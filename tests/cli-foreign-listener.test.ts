// The admin token the CLI finds in the data dir goes unasked to a loopback URL. Another local user
// listening there (the control plane stopped, or on another address) must not be handed it: the CLI
// sends it only to a listener that runs as the token file's owner. The squatter here is a real HTTP
// server run as `nobody` on a loopback address, recording every Authorization header it gets.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { chmodSync, readFileSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { guardAdminToken } from "../control/cli/credentials.ts"
import { listenersFor, tcpListeners } from "../control/cli/loopback-listener.ts"
import { freePort, startInProcess } from "./support/control-plane.ts"
import { requireTool, run } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")
const NOBODY = 65534
let dir: string
let squatter: Subprocess
let port: number

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "chimera-foreign-listener-"))
  chmodSync(dir, 0o755)
  const log = join(dir, "heard")
  writeFileSync(log, "")
  chmodSync(log, 0o666)
  const server = join(dir, "squat.js")
  writeFileSync(
    server,
    `const fs = require("fs"); Bun.serve({ hostname: "127.0.0.1", port: Number(process.argv[2]), fetch(req) { fs.appendFileSync(${JSON.stringify(log)}, (req.headers.get("authorization") ?? "none") + "\\n"); return Response.json({ nodes: [] }) } })\n`,
  )
  chmodSync(server, 0o644)
  port = freePort()
  squatter = Bun.spawn(
    [
      requireTool("setpriv"),
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      "--clear-groups",
      process.execPath,
      server,
      String(port),
    ],
    { stdout: "ignore", stderr: "inherit" },
  )
  await waitFor(
    "the squatter to listen",
    () =>
      fetch(`http://127.0.0.1:${port}/`).then(
        (r) => r.status,
        () => 0,
      ),
    (s) => s === 200,
  )
  writeFileSync(log, "")
})
afterAll(async () => {
  squatter?.kill()
  await squatter?.exited
  await rm(dir, { recursive: true, force: true })
})

test("the kernel's tables name the squatter's uid for its address", () => {
  const all = tcpListeners()
  expect(all).not.toBeNull()
  expect(listenersFor("127.0.0.1", port, all ?? []).map((l) => l.uid)).toEqual([NOBODY])
  expect(listenersFor("localhost", port, all ?? []).map((l) => l.uid)).toEqual([NOBODY])
})

test("the local admin token is not sent to a loopback listener run by another user", async () => {
  const data = join(dir, "data")
  await using cp = await startInProcess({ dataDir: data })
  const env = { CHIMERA_DATA_DIR: data, CHIMERA_URL: `http://127.0.0.1:${port}`, CHIMERA_TOKEN: "", HOME: dir }
  const r = await run([process.execPath, MAIN, "nodes", "list"], { env })
  expect(r.code).toBe(1)
  expect(r.stderr).toContain(`not sending the admin token in ${join(data, "admin.token")} to http://127.0.0.1:${port}`)
  expect(r.stderr).toContain(`runs as uid ${NOBODY}`)
  expect(readFileSync(join(dir, "heard"), "utf8")).toBe("")
  // The control plane that made the token, listening as its owner, gets it as before.
  const ok = await run([process.execPath, MAIN, "nodes", "list"], { env: { ...env, CHIMERA_URL: cp.url } })
  expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: "" })
}, 60_000)

test("a client kept open (dash, mcp, code) checks the listener again before each request with the admin token", async () => {
  const data = join(dir, "data-long")
  await using cp = await startInProcess({ dataDir: data })
  const admin = readFileSync(join(data, "admin.token"), "utf8").trim()
  const original = globalThis.fetch
  guardAdminToken({ CHIMERA_DATA_DIR: data })
  try {
    const auth = { authorization: `Bearer ${admin}` }
    // Its own control plane, as before; then the port it would use next belongs to another user.
    expect((await fetch(`${cp.url}/api/nodes`, { headers: auth })).status).toBe(200)
    const refused = await fetch(`http://127.0.0.1:${port}/api/nodes`, { headers: auth }).then(
      () => "sent",
      (error: Error) => error.message,
    )
    expect(refused).toContain(`runs as uid ${NOBODY}`)
    expect(readFileSync(join(dir, "heard"), "utf8")).toBe("")
    // Other credentials go as they are.
    await fetch(`http://127.0.0.1:${port}/api/nodes`, { headers: { authorization: "Bearer someone-elses" } })
    expect(readFileSync(join(dir, "heard"), "utf8")).toBe("Bearer someone-elses\n")
  } finally {
    globalThis.fetch = original
    writeFileSync(join(dir, "heard"), "")
  }
}, 60_000)
