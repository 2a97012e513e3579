// The web dashboard from the compiled control plane (`bun run build`'s dist/chimera): the page and its
// bundled script and stylesheet are inside the executable, so it serves them from any directory with
// no source tree and no build step. A browser signs in with the admin token, sees a simulated node,
// and sees its drift report arrive live.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { call, heartbeatBody } from "./support/auth.ts"
import { launchBrowser, type TestBrowser } from "./support/browser.ts"
import { freePort } from "./support/control-plane.ts"
import { signInWithToken, waitForRowStatus } from "./support/dashboard.ts"
import { runOk } from "./support/tools.ts"
import { waitFor } from "./support/wait.ts"

const ROOT = join(import.meta.dir, "..")
const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const GEN2 = "/nix/store/wi6rh8nbq7wb5jnhzccqkkk341v4h5k2-chimera-test-system-2"

let dir: string
let proc: Subprocess
let url: string
let adminToken: string
let browser: TestBrowser

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "chimera-web-bin-"))
  await runOk([process.execPath, join(ROOT, "scripts/build.ts"), "--outdir", join(dir, "dist")])
  const port = freePort()
  url = `http://127.0.0.1:${port}`
  // Tags come from the configuration's [fleet.nodes.NAME] tables (never dialled here).
  const config = join(dir, "chimera.toml")
  await writeFile(config, '[fleet.nodes.sim-1]\naddress = "root@127.0.0.1:22"\ntags = ["db", "eu"]\n')
  // Run from an empty directory: nothing of the source tree is there to be read.
  proc = Bun.spawn([join(dir, "dist/chimera"), "web", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: dir,
    env: { ...process.env, CHIMERA_DATA_DIR: join(dir, "data"), CHIMERA_CONFIG_FILE: config },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  })
  await waitFor(
    "dist/chimera to answer",
    () =>
      fetch(`${url}/api/health`).then(
        (r) => r.status,
        () => 0,
      ),
    (s) => s === 200 || proc.exitCode !== null,
    60_000,
  )
  if (proc.exitCode !== null) throw new Error(`dist/chimera exited ${proc.exitCode}`)
  adminToken = (await readFile(join(dir, "data/admin.token"), "utf8")).trim()
  browser = await launchBrowser({ colorScheme: "dark" })
}, 240_000)

afterAll(async () => {
  await browser?.close()
  proc?.kill("SIGTERM")
  await proc?.exited
  await rm(dir, { recursive: true, force: true })
})

test("the compiled dist/chimera serves the dashboard with its CSP, and it shows a node's drift live", async () => {
  const html = await (await fetch(url)).text()
  expect(html).toContain('http-equiv="Content-Security-Policy"')
  expect(html).toContain("script-src 'self'")
  const script = /<script type="module" crossorigin src="([^"]+)"/.exec(html)?.[1]
  expect(script).toBeDefined()
  expect((await fetch(`${url}${script}`)).headers.get("content-type")).toContain("javascript")

  const cp = { url }
  const enrol = async (nodeId: string, hostname: string) => {
    const jt = (await (await call(cp, adminToken, "POST", "/api/nodes/join-tokens", { nodeId })).json()) as {
      token: string
    }
    const enrolled = await call(cp, jt.token, "POST", "/api/agent/enroll", { nodeId, hostname, agentVersion: "t" })
    expect(enrolled.status).toBe(201)
    return ((await enrolled.json()) as { credential: string }).credential
  }
  // A hostname is whatever the node says it is: markup in it must stay text.
  const credential = await enrol("sim-1", "<img src=x onerror=alert(1)>")
  await enrol("sim-2", "sim-2")
  const beat = (desired: string, current: string, phase: string) =>
    call(cp, credential, "POST", "/api/agent/sim-1/heartbeat", {
      ...heartbeatBody("sim-1"),
      hostname: "<img src=x onerror=alert(1)>",
      // Long enough that the node does not turn unreachable while the test looks at it.
      heartbeatIntervalSeconds: 600,
      system: { profile: current, current, booted: GEN1 },
      desired,
      phase,
    })
  expect((await call(cp, adminToken, "PUT", "/api/nodes/sim-1/desired", { closure: GEN1 })).status).toBe(200)
  expect((await beat(GEN1, GEN1, "congruent")).status).toBe(200)

  const page = await browser.page()
  await signInWithToken(page, url, adminToken)
  await waitForRowStatus(page, "sim-1", "healthy")
  await page.getByTestId("stream-state").filter({ hasText: "Live" }).waitFor()

  const report = {
    reports: [
      {
        seq: 1,
        at: new Date().toISOString(),
        type: "drift.detected",
        data: { kinds: ["runtime-drift"], desired: GEN1, system: { profile: GEN1, current: GEN2, booted: GEN1 } },
      },
    ],
  }
  expect((await call(cp, credential, "POST", "/api/agent/sim-1/reports", report)).status).toBe(200)
  expect((await beat(GEN1, GEN2, "drifted")).status).toBe(200)
  await waitForRowStatus(page, "sim-1", "drifted")
  await page.getByTestId("latest-events").getByText("drift.detected").waitFor()
  await page.screenshot({ path: join(ROOT, "docs/screenshots/binary-dark.png") })

  // The tag filter shows the configured node only.
  await page.getByLabel("Tag").selectOption("db")
  await page.getByText("1 of 2 shown").waitFor()
  expect(await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "sim-2" }).count()).toBe(0)

  await page.getByRole("table", { name: "Nodes" }).getByRole("link", { name: "sim-1", exact: true }).click()
  await page.getByText("host <img src=x onerror=alert(1)>", { exact: false }).waitFor()
  expect(await page.locator("main img").count()).toBe(0)
  expect(browser.problems).toEqual([])
})

test("neither compiled program reads .env or bunfig.toml from the directory it is started in", async () => {
  // An operator may run `chimera` inside a repository someone else wrote; a bunfig's preload would run
  // that repository's code with the operator's token, and a .env would point the CLI elsewhere.
  const hostile = join(dir, "hostile-checkout")
  await runOk(["mkdir", "-p", join(hostile, "home")])
  await writeFile(join(hostile, "preload.js"), 'console.error("PRELOAD RAN")\n')
  await writeFile(join(hostile, "bunfig.toml"), 'preload = ["./preload.js"]\n')
  await writeFile(join(hostile, ".env"), "CHIMERA_URL=http://127.0.0.1:9\nCHIMERA_TOKEN=from-dotenv\n")
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: join(hostile, "home") }
  const run = async (cmd: string[]) => {
    const p = Bun.spawn(cmd, { cwd: hostile, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" })
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
    return out + err
  }
  const cli = await run([join(dir, "dist/chimera"), "whoami"])
  expect(cli).not.toContain("PRELOAD RAN")
  // No token from .env, so it asks for one instead of dialling the .env's address.
  expect(cli).toContain("no token")
  expect(cli).not.toContain("127.0.0.1:9")
  const agent = await run([join(dir, "dist/chimera-agent"), "--version"])
  expect(agent).not.toContain("PRELOAD RAN")
  expect(agent.trim()).toMatch(/^\d+\.\d+\.\d+/)
})
