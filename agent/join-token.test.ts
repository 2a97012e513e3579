// How the join token reaches a real agent, enrolling against a real control plane: from a file (which
// --delete-join-token-file removes once enrolled), from stdin, from $CHIMERA_JOIN_TOKEN, and on the
// command line, which still works but is readable by every local user (/proc/PID/cmdline is world
// readable) and so earns a warning that says why and what to use instead.
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, readFileSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startInProcess, type TestControlPlane } from "../tests/support/control-plane.ts"
import { waitFor } from "../tests/support/wait.ts"

const AGENT_MAIN = join(import.meta.dir, "main.ts")
const dirs: string[] = []
let cp: TestControlPlane | undefined

afterAll(async () => {
  await cp?.stop()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function controlPlane(): Promise<TestControlPlane> {
  cp ??= await startInProcess()
  return cp
}

async function joinToken(c: TestControlPlane, nodeId: string): Promise<string> {
  const res = await c.api("/api/nodes/join-tokens", { method: "POST", body: JSON.stringify({ nodeId }) })
  expect(res.status).toBe(201)
  return ((await res.json()) as { token: string }).token
}

/** The real agent, standalone links in a temp dir, talking to the control plane; stderr kept. */
async function agent(nodeId: string, args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) {
  const c = await controlPlane()
  const dir = await mkdtemp(join(tmpdir(), "chimera-jointoken-"))
  dirs.push(dir)
  const proc = Bun.spawn(
    [
      process.execPath,
      AGENT_MAIN,
      "--node-id",
      nodeId,
      "--control-url",
      c.url,
      "--state-dir",
      join(dir, "state"),
      "--system-profile",
      join(dir, "profile"),
      "--current-system",
      join(dir, "current"),
      "--booted-system",
      join(dir, "booted"),
      "--heartbeat",
      "1",
      ...args,
    ],
    {
      env: { ...process.env, CHIMERA_JOIN_TOKEN: "", CHIMERA_URL: "", ...opts.env },
      stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
      stdout: "ignore",
      stderr: "pipe",
    },
  )
  let log = ""
  const drain = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) log += chunk
  })()
  const enrolled = () =>
    waitFor(
      `${nodeId} enrolled and heard from (agent log: ${log.slice(-800)})`,
      async () => (await (await c.api(`/api/nodes/${nodeId}`)).json()) as { lastHeartbeat?: string | null },
      (n) => typeof n.lastHeartbeat === "string",
    )
  const stop = async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM")
    await proc.exited
    await drain
    return log
  }
  return { proc, dir, enrolled, stop, log: () => log }
}

/** What `ps` shows every local user: the process's argv, from /proc/PID/cmdline (mode 0444). */
const commandLine = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")

describe("the agent's join token", () => {
  test("from a file: enrols, the token is not on the command line, and the file is deleted once enrolled", async () => {
    const c = await controlPlane()
    const token = await joinToken(c, "jt-file")
    const dir = await mkdtemp(join(tmpdir(), "chimera-jointoken-"))
    dirs.push(dir)
    const file = join(dir, "join-token")
    await writeFile(file, `${token}\n`, { mode: 0o600 })
    const a = await agent("jt-file", ["--join-token-file", file, "--delete-join-token-file"])
    await a.enrolled()
    expect(commandLine(a.proc.pid)).not.toContain(token)
    await waitFor(
      "the token file deleted",
      async () => existsSync(file),
      (exists) => !exists,
    )
    const log = await a.stop()
    expect(log).toContain("join token file deleted")
    expect(log).not.toContain(token)
    expect(log).not.toContain("on the command line")
  })

  test("from stdin (--join-token-file -) and from $CHIMERA_JOIN_TOKEN: enrols, never on the command line", async () => {
    const c = await controlPlane()
    const viaStdin = await joinToken(c, "jt-stdin")
    const a = await agent("jt-stdin", ["--join-token-file", "-"], { stdin: `${viaStdin}\n` })
    const viaEnv = await joinToken(c, "jt-env")
    const b = await agent("jt-env", [], { env: { CHIMERA_JOIN_TOKEN: viaEnv } })
    await Promise.all([a.enrolled(), b.enrolled()])
    expect(commandLine(a.proc.pid)).not.toContain(viaStdin)
    expect(commandLine(b.proc.pid)).not.toContain(viaEnv)
    // Nor does it reach what the agent runs: a relayed command sees no CHIMERA_JOIN_TOKEN.
    const relayed = await c.api("/api/fleet/run", {
      method: "POST",
      body: JSON.stringify({ command: "printenv; echo end", nodes: ["jt-env"], timeout: 20 }),
    })
    const out = ((await relayed.json()) as { results: { status: string; stdout: string }[] }).results[0]
    expect(out?.status).toBe("ok")
    expect(out?.stdout).toContain("end")
    expect(out?.stdout).not.toContain("CHIMERA_JOIN_TOKEN")
    expect(out?.stdout).not.toContain(viaEnv)
    for (const log of [await a.stop(), await b.stop()]) expect(log).not.toContain("on the command line")
  })

  test("--join-token on the command line still enrols, with a warning that says why and what to use", async () => {
    const c = await controlPlane()
    const token = await joinToken(c, "jt-flag")
    const a = await agent("jt-flag", ["--join-token", token])
    await a.enrolled()
    // This is what the warning is about: anyone on the host can read it.
    expect(commandLine(a.proc.pid)).toContain(token)
    const log = await a.stop()
    const warning = log.split("\n").find((l) => l.includes("on the command line"))
    expect(warning).toBeDefined()
    expect(JSON.parse(warning ?? "{}")).toMatchObject({ level: "warning", module: "agent" })
    expect(warning).toContain("--join-token-file")
    expect(warning).toContain("CHIMERA_JOIN_TOKEN")
    expect(warning).not.toContain(token)
  })

  test("--delete-join-token-file without a file is refused at start, naming the flag", async () => {
    const a = await agent("jt-bad", ["--join-token-file", "-", "--delete-join-token-file"], { stdin: "x\n" })
    expect(await a.proc.exited).toBe(1)
    expect(await a.stop()).toContain("--delete-join-token-file: needs --join-token-file PATH")
  })

  test("a mistyped flag stops the agent at start, naming the flag it is nearest to", () => {
    // citty alone would drop `--hartbeat 3`, and the agent would heartbeat at the default interval.
    const r = Bun.spawnSync([process.execPath, AGENT_MAIN, "--node-id", "x", "--hartbeat", "3"], {
      stdout: "pipe",
      stderr: "pipe",
    })
    expect(r.exitCode).toBe(1)
    expect(r.stderr.toString()).toContain("unknown option --hartbeat (did you mean --heartbeat?) for chimera-agent")
  })

  test("agent --help offers the file, stdin and the environment before the command line", async () => {
    const help = Bun.spawnSync([process.execPath, AGENT_MAIN, "--help"], { stdout: "pipe", stderr: "pipe" })
    const text = help.stdout.toString() + help.stderr.toString()
    const at = (s: string) => text.indexOf(s)
    expect(at("--join-token-file")).toBeGreaterThan(0)
    expect(at("--join-token=")).toBeGreaterThan(at("--join-token-file"))
    expect(text).toContain("CHIMERA_JOIN_TOKEN")
    expect(text).toContain("USAGE chimera-agent [OPTIONS]")
    expect(text).toMatch(/--join-token=\S+\s+.*every local user can read it with ps/)
    // Read through a pipe, as a journal or `| less` would: plain text, no escape codes.
    expect(text).not.toContain("\u001b[")
    expect(help.exitCode).toBe(0)
  })
})
