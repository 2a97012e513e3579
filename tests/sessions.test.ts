// `chimera run`, `attach` and `sessions` end to end: the real CLI as a subprocess, a real tmux server
// (a private one, through CHIMERA_TMUX_SOCKET) and real nix-shell with nix/dev-shell.nix.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { USAGE_STATUS } from "../control/cli/errors.ts"
import { killTmuxServer } from "./support/tmux.ts"
import { requireTool, run } from "./support/tools.ts"

for (const tool of ["tmux", "nix-shell", "nix-instantiate"]) requireTool(tool)
const ROOT = join(import.meta.dir, "..")
const MAIN = join(ROOT, "control/main.ts")
const DEV_SHELL = join(ROOT, "nix/dev-shell.nix")
const socket = `chimera-sessions-test-${process.pid}`
const scratch = await mkdtemp(join(tmpdir(), "chimera-sessions-test-"))

afterAll(async () => {
  await killTmuxServer(socket)
  await rm(scratch, { recursive: true, force: true })
})

interface Result {
  code: number
  stdout: string
  stderr: string
}

function chimera(args: string[], cwd = ROOT): Promise<Result> {
  return run([process.execPath, MAIN, ...args], { cwd, env: { CHIMERA_TMUX_SOCKET: socket, NO_COLOR: "1" } })
}

const runIn = (session: string, ...command: string[]) =>
  chimera(["run", "--config", DEV_SHELL, "--session", session, ...command])

describe("chimera run", () => {
  test("shows the command's output and exits with its exit code", async () => {
    const r = await runIn("exit-code", "echo hello from the session; echo to-stderr >&2; exit 3")
    expect(r).toMatchObject({ code: 3, stdout: "hello from the session\nto-stderr\n" })
    expect((await runIn("exit-code", "true")).code).toBe(0)
  })

  test("runs the command inside nix-shell CONFIG: the shell's variables and tools are there", async () => {
    const r = await runIn("marker", 'echo "CHIMERA_SHELL=$CHIMERA_SHELL"; chimera-hello')
    expect(r).toMatchObject({ code: 0, stdout: "CHIMERA_SHELL=1\nhello from the chimera dev shell\n" })
  })

  test("the session outlives the CLI and keeps the cwd and variables one run leaves for the next", async () => {
    expect((await runIn("stateful", "cd /tmp && export CHIMERA_LEFT='left by run 1'")).code).toBe(0)
    expect((await run(["tmux", "-L", socket, "has-session", "-t", "=stateful"])).code).toBe(0)
    const r = await runIn("stateful", 'pwd; echo "$CHIMERA_LEFT"')
    expect(r).toMatchObject({ code: 0, stdout: "/tmp\nleft by run 1\n" })
  })

  test("the words after -- form the command", async () => {
    const r = await chimera(["run", "-c", DEV_SHELL, "-s", "words", "--", "echo", "one", "two"])
    expect(r).toMatchObject({ code: 0, stdout: "one two\n" })
  })

  test("another config in the same session swaps the nix-shell and keeps the directory", async () => {
    const other = join(scratch, "other-shell.nix")
    await writeFile(
      other,
      `derivation { name = "chimera-other-shell"; system = builtins.currentSystem; builder = "/bin/sh";
        args = [ "-c" "echo > $out" ]; CHIMERA_SHELL = "other"; }`,
    )
    expect((await runIn("swap", "cd /var")).code).toBe(0)
    const r = await chimera(["run", "--config", other, "--session", "swap", 'echo "$CHIMERA_SHELL"; pwd'])
    expect(r).toMatchObject({ code: 0, stdout: "other\n/var\n" })
  })

  test("the default config is ./default.nix, and a missing one is an error naming its path", async () => {
    const r = await chimera(["run", "--session", "no-config", "true"], scratch)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`no Nix config at ${join(scratch, "default.nix")}`)
    expect(r.stderr).toContain("--config")
  })

  test("a config that does not evaluate is an error with Nix's message", async () => {
    const broken = join(scratch, "broken.nix")
    await writeFile(broken, 'builtins.throw "chimera-broken-config"')
    const r = await chimera(["run", "--config", broken, "--session", "broken", "true"])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("chimera-broken-config")
  })

  test("a nix-shell that cannot start is reported with what the session shows, and the command does not run", async () => {
    const badInput = join(scratch, "bad-input.nix")
    await writeFile(
      badInput,
      `let input = derivation { name = "chimera-bad-input-${process.pid}"; system = builtins.currentSystem;
        builder = "/bin/sh"; args = [ "-c" "echo chimera-input-failed >&2; exit 1" ]; };
      in derivation { name = "chimera-bad-shell"; system = builtins.currentSystem; builder = "/bin/sh";
        args = [ "-c" "echo > $out" ]; DEP = "\${input}"; }`,
    )
    const r = await chimera(["run", "--config", badInput, "--session", "bad-input", "echo should-not-run"])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`nix-shell ${badInput} did not start in session bad-input`)
    expect(r.stderr).toContain("chimera-input-failed")
    expect(r.stdout).not.toContain("should-not-run")
  })

  test("bad session names and a missing command are refused before anything runs", async () => {
    for (const name of ["has space", "a.b", "-dash", "x:y"]) {
      const r = await chimera(["run", "--config", DEV_SHELL, `--session=${name}`, "true"])
      expect(r.code).toBe(USAGE_STATUS)
      expect(r.stderr).toContain("--session")
    }
    const none = await chimera(["run", "--config", DEV_SHELL])
    expect(none.code).toBe(USAGE_STATUS)
    expect(none.stderr).toContain("expected a command")
  })
})

describe("chimera attach and sessions", () => {
  test("attach without a terminal prints what the session's pane shows", async () => {
    await runIn("attach-me", "echo visible-in-the-pane")
    const r = await chimera(["attach", "attach-me"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("visible-in-the-pane")
    expect(r.stdout).toContain("[nix-shell:")
  })

  test("attach to an unknown session names it and lists the sessions that exist", async () => {
    await runIn("listed-one", "true")
    const r = await chimera(["attach", "nowhere"])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("session nowhere not found")
    expect(r.stderr).toContain("listed-one")
  })

  test("sessions --json lists the sessions run created; kill ends one", async () => {
    await runIn("json-listed", "true")
    const listed = await chimera(["sessions", "--json"])
    expect(listed.code).toBe(0)
    const { sessions } = JSON.parse(listed.stdout) as { sessions: { id: string; windows: number }[] }
    expect(sessions.find((s) => s.id === "json-listed")).toMatchObject({ windows: 1, attached: false })
    expect((await chimera(["sessions"])).stdout).toContain("json-listed")
    expect(await chimera(["sessions", "kill", "json-listed"])).toMatchObject({ code: 0 })
    const after = JSON.parse((await chimera(["sessions", "--json"])).stdout) as { sessions: { id: string }[] }
    expect(after.sessions.map((s) => s.id)).not.toContain("json-listed")
    expect((await chimera(["sessions", "kill", "json-listed"])).stderr).toContain("not found")
  })

  test("sessions kill --json says which session was killed; one not found is an error line and exit 1, stdout empty", async () => {
    await runIn("json-killed", "true")
    const killed = await chimera(["sessions", "kill", "json-killed", "--json"])
    expect({ code: killed.code, json: JSON.parse(killed.stdout) }).toEqual({
      code: 0,
      json: { id: "json-killed", killed: true },
    })
    // As every --json command fails: stdout holds no document, stderr one `error …` line.
    const again = await chimera(["sessions", "kill", "json-killed", "--json"])
    expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 1, stdout: "" })
    expect(again.stderr).toStartWith("error session json-killed not found; ")
    expect(again.stderr.split("\n").filter(Boolean)).toHaveLength(1)
  })
})
