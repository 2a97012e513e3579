// CLI sessions do not outlive a crash of the control plane unseen. A real `chimera web` child process
// on loopback opens a real bash session in tmux (its private server), is SIGKILLed, and the session
// survives it, invisible to any API: a root shell nobody owns. The next start on the same data dir
// ends it and says so, in a log line and an audit row; a session of a control plane that still runs
// on the same tmux server is left alone.
import { describe, expect, setDefaultTimeout, test } from "bun:test"
import { currentProcessInstance, instanceTag } from "../control/adapters/process-instance.ts"
import { createTmuxSessions } from "../control/adapters/tmux.ts"
import { endLeftoverSessions } from "../control/domain/cli-session-leftovers.ts"
import { SessionId } from "../protocol/ids.ts"
import { freePort, spawnControlPlane } from "./support/control-plane.ts"
import { killTmuxServer } from "./support/tmux.ts"
import { requireTool, run } from "./support/tools.ts"

requireTool("tmux")
setDefaultTimeout(60_000)

const alive = async (socket: string, id: string) =>
  (await run(["tmux", "-L", socket, "has-session", "-t", `=${id}`])).code === 0

/** Reads STREAM until it holds a line matching WHAT; returns that line. */
async function lineOf(stream: ReadableStream<Uint8Array>, what: RegExp): Promise<string> {
  let text = ""
  const decoder = new TextDecoder()
  const reader = stream.getReader()
  try {
    for (;;) {
      const line = text.split("\n").find((l) => what.test(l))
      if (line !== undefined) return line
      const { value, done } = await reader.read()
      if (done) throw new Error(`no line matching ${what} in:\n${text}`)
      text += decoder.decode(value, { stream: true })
    }
  } finally {
    reader.releaseLock()
  }
}

describe("CLI sessions and a crash of the control plane", () => {
  test("after SIGKILL the bash session outlives the process; the next start ends it, logs it and audits it", async () => {
    await using cp = await spawnControlPlane(freePort())
    const res = await cp.api("/api/cli/sessions", { method: "POST", body: JSON.stringify({ cli_tool: "bash" }) })
    expect(res.status).toBe(201)
    const { sessionId } = (await res.json()) as { sessionId: string }
    expect(await alive(cp.tmuxSocket, sessionId)).toBe(true)

    await cp.kill()
    // This is the finding: nothing stopped the shell.
    expect(await alive(cp.tmuxSocket, sessionId)).toBe(true)

    // The start ends leftovers before it serves, so once it answers the shell is gone.
    await cp.restart()
    expect(await alive(cp.tmuxSocket, sessionId)).toBe(false)
    const stderr = cp.proc.stderr
    if (!stderr || typeof stderr === "number") throw new Error("the control plane's stderr is not piped")
    const logged = JSON.parse(await lineOf(stderr, /no longer running/)) as Record<string, unknown>
    expect(logged).toMatchObject({ level: "warning", module: "cli-sessions", sessionId, user: "bootstrap admin" })

    const audit = (await (await cp.api("/api/audit?action=cli.session.ended-at-start")).json()) as {
      entries: { actor: string; nodeId: string; result: string; detail: Record<string, unknown> }[]
    }
    expect(audit.entries).toHaveLength(1)
    expect(audit.entries[0]).toMatchObject({
      actor: "control-plane",
      nodeId: "control-plane",
      result: "ok",
      detail: { sessionId, user: "bootstrap admin" },
    })
    const listed = (await (await cp.api("/api/cli/sessions")).json()) as { sessions: { sessionId: string }[] }
    expect(listed.sessions.map((s) => s.sessionId)).not.toContain(sessionId)
  })

  test("a session of a control plane that still runs is left alone; one without an owner is ended", async () => {
    const socket = `chimera-leftover-${process.pid}`
    const tmux = createTmuxSessions({ socketName: socket })
    // A real process stands for the other control plane: its tag is its pid and start time.
    const other = Bun.spawn(["sleep", "600"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" })
    const theirs = SessionId.parse("chimera-cli-00000000000000a1")
    const untagged = SessionId.parse("chimera-cli-00000000000000a2")
    const notCli = SessionId.parse("chimera-deploy-1")
    try {
      await tmux.createSession(theirs, { owner: { instance: instanceTag(other.pid), user: "alice" } })
      await tmux.createSession(untagged)
      await tmux.createSession(notCli)
      const ended = await endLeftoverSessions(tmux, currentProcessInstance())
      expect(ended.map((s) => [s.sessionId, s.user, s.previousInstance])).toEqual([[untagged, null, null]])
      expect((await tmux.listSessions()).map((s) => s.id).sort()).toEqual([notCli, theirs].sort())
      // Once its maker is gone, it is a leftover too.
      other.kill("SIGKILL")
      await other.exited
      const later = await endLeftoverSessions(tmux, currentProcessInstance())
      expect(later.map((s) => [s.sessionId, s.user])).toEqual([[theirs, "alice"]])
      expect((await tmux.listSessions()).map((s) => s.id)).toEqual([notCli])
    } finally {
      other.kill("SIGKILL")
      await killTmuxServer(socket)
    }
  })
})
