// The tmux SessionPort against a real tmux server on a private socket (tmux -L), killed afterwards.
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, readdirSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { killTmuxServer } from "../../tests/support/tmux.ts"
import { requireTool } from "../../tests/support/tools.ts"
import { createTmuxSessions } from "./tmux.ts"

requireTool("tmux")
const socketName = `chimera-tmux-test-${process.pid}`
const runDir = await mkdtemp(join(tmpdir(), "chimera-tmux-test-"))
const sessions = createTmuxSessions({ socketName, runDir })

afterAll(async () => {
  await killTmuxServer(socketName)
  await rm(runDir, { recursive: true, force: true })
})

async function collect(id: string, command: string): Promise<{ exitCode: number; output: string }> {
  let output = ""
  const { exitCode } = await sessions.runAndWait(id, command, (chunk) => {
    output += chunk
  })
  return { exitCode, output }
}

describe("tmux sessions", () => {
  test("createSession makes a session once and reports that it existed the second time", async () => {
    expect(await sessions.createSession("create-once")).toBe(true)
    expect(await sessions.createSession("create-once")).toBe(false)
    const listed = (await sessions.listSessions()).find((s) => s.id === "create-once")
    expect(listed).toMatchObject({ id: "create-once", attached: false, windows: 1 })
    expect(Date.now() - Date.parse(listed?.createdAt ?? "")).toBeLessThan(60_000)
  })

  test("sessions are listed whole where the locale is not UTF-8 (LANG unset, as under env -i)", async () => {
    await sessions.createSession("c-locale", { owner: { instance: "i-1", user: "ops" } })
    // tmux then prints a tab, or any unprintable character, in its output as `_`. The locale is the
    // tmux client's, so the listing runs in a process of its own with the environment env -i leaves.
    const script = `const { createTmuxSessions } = await import(${JSON.stringify(join(import.meta.dir, "tmux.ts"))})
      console.log(JSON.stringify(await createTmuxSessions({ socketName: ${JSON.stringify(socketName)} }).listSessions()))`
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", LC_ALL: "C" }
    const child = Bun.spawnSync([process.execPath, "-e", script], { env, stdout: "pipe", stderr: "pipe" })
    expect(child.stderr.toString()).toBe("")
    const listed = (JSON.parse(child.stdout.toString()) as { id: string; createdAt: string }[]).find(
      (s) => s.id === "c-locale",
    )
    expect(listed).toMatchObject({ id: "c-locale", windows: 1, owner: { instance: "i-1", user: "ops" } })
    expect(Date.now() - Date.parse(listed?.createdAt ?? "")).toBeLessThan(60_000)
  })

  test("runAndWait streams stdout and stderr and gives the command's real exit code", async () => {
    await sessions.createSession("exit-code")
    const result = await collect("exit-code", "echo out; echo err >&2; exit 3")
    expect(result).toEqual({ exitCode: 3, output: "out\nerr\n" })
    expect(await collect("exit-code", "false")).toEqual({ exitCode: 1, output: "" })
    expect(await collect("exit-code", "true")).toEqual({ exitCode: 0, output: "" })
  })

  test("quotes, dollars, backslashes and newlines reach the shell verbatim, with no injection", async () => {
    await sessions.createSession("quoting")
    const command = `printf '%s|' "it's" 'a "b"' '$HOME' "\\\\n" '; tmux kill-server'\necho "line2 $((1 + 2))"`
    const result = await collect("quoting", command)
    expect(result.exitCode).toBe(0)
    expect(result.output).toBe(`it's|a "b"|$HOME|\\n|; tmux kill-server|line2 3\n`)
    expect(await sessions.listSessions()).not.toHaveLength(0)
  })

  test("the session survives `exit` and keeps the cwd and exported variables for the next command", async () => {
    await sessions.createSession("state")
    expect((await collect("state", "cd /tmp && export CHIMERA_T='a b'; exit 7")).exitCode).toBe(7)
    expect(await collect("state", 'pwd; echo "$CHIMERA_T"')).toEqual({ exitCode: 0, output: "/tmp\na b\n" })
  })

  test("output longer than one poll arrives whole and in order", async () => {
    await sessions.createSession("long")
    const result = await collect("long", "for i in $(seq 1 2000); do echo line-$i; done; sleep 0.2; echo end")
    const lines = result.output.trimEnd().split("\n")
    expect(lines).toHaveLength(2001)
    expect(lines[0]).toBe("line-1")
    expect(lines.at(-2)).toBe("line-2000")
    expect(lines.at(-1)).toBe("end")
  })

  test("runCommand types input without waiting; capture shows the pane", async () => {
    await sessions.createSession("typed")
    const file = join(runDir, "typed.out")
    expect(await sessions.runCommand("typed", `echo typed-here > '${file}'`)).toBe(true)
    // The shell creates the file before echo writes to it, so wait for the content, not the file.
    const content = async () => (existsSync(file) ? await readFile(file, "utf8") : "")
    for (let i = 0; i < 250 && (await content()) !== "typed-here\n"; i++) await Bun.sleep(20)
    expect(await content()).toBe("typed-here\n")
    await collect("typed", "echo visible-in-pane")
    expect(await sessions.capture("typed")).toContain("visible-in-pane")
  })

  test("interrupt sends Ctrl-C to the running command, which ends with 130, and the session carries on", async () => {
    await sessions.createSession("interrupt")
    const waiting = collect("interrupt", "sleep 30")
    await Bun.sleep(300)
    await sessions.interrupt("interrupt")
    expect((await waiting).exitCode).toBe(130)
    expect(await collect("interrupt", "echo still-here")).toEqual({ exitCode: 0, output: "still-here\n" })
  })

  test("an interrupt sent the moment a command is asked for waits until it runs, then ends it with 130", async () => {
    await sessions.createSession("early-interrupt")
    const started = Date.now()
    const waiting = collect("early-interrupt", "sleep 30")
    await sessions.interrupt("early-interrupt")
    expect((await waiting).exitCode).toBe(130)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  test("a session can start in a directory and run a given program instead of the default shell", async () => {
    expect(await sessions.createSession("started", { cwd: "/var", command: ["bash", "--norc", "--noprofile"] })).toBe(
      true,
    )
    expect(await collect("started", 'pwd; echo "$0"')).toEqual({ exitCode: 0, output: "/var\nbash\n" })
    expect(await sessions.processId("started")).toBeGreaterThan(1)
  })

  test("an unknown session is an error naming it and the sessions that exist", async () => {
    await sessions.createSession("known")
    const error = await sessions.runAndWait("unknown-one", "true").catch((e: Error) => e)
    expect(String(error)).toContain("session unknown-one not found")
    expect(String(error)).toContain("known")
    expect(sessions.capture("unknown-one")).rejects.toThrow("unknown-one")
  })

  test("names tmux would rewrite are refused instead of silently renamed", async () => {
    expect(sessions.createSession("a.b")).rejects.toThrow("expected a session name")
    expect(sessions.createSession("bad name")).rejects.toThrow()
  })

  test("killSession ends a session and reports whether there was one", async () => {
    await sessions.createSession("to-kill")
    expect(await sessions.killSession("to-kill")).toBe(true)
    expect(await sessions.killSession("to-kill")).toBe(false)
    expect((await sessions.listSessions()).map((s) => s.id)).not.toContain("to-kill")
  })

  test("attachCommand targets the exact session on the private server", () => {
    expect(sessions.attachCommand("state")).toEqual(["tmux", "-L", socketName, "attach-session", "-t", "=state"])
  })

  test("the per-command files are removed once the command ended", async () => {
    await sessions.createSession("cleanup")
    await collect("cleanup", "echo x")
    expect(readdirSync(runDir).filter((f) => f.startsWith("chimera-run-"))).toEqual([])
  })

  test("listSessions on a server that is not running is empty", async () => {
    const none = createTmuxSessions({ socketName: `${socketName}-none` })
    expect(await none.listSessions()).toEqual([])
  })
})
