// `chimera run` as a use case: run a command inside `nix-shell CONFIG` in a persistent
// session, so what one run leaves behind (cwd, exported variables, background jobs) is there for the
// next, and an operator can attach and see it all.
//
// The session's shell enters the nix-shell once and stays in it: the entry runs
// `__chimera_nix_config=CONFIG` in the nix-shell's own shell, a variable that is deliberately not
// exported, so only that very shell (and the subshells runAndWait starts from it) has it, never a
// process that merely inherited the environment. Each run first asks the session which config its
// shell is in; when it is another one (or none), it leaves the old nix-shell, enters the new one in
// the same directory, and asks again, so a nix-shell that failed to start is reported, not bypassed.

import type { SessionId } from "../../protocol/ids.ts"
import { shq } from "./activation.ts"
import { ChimeraError } from "./errors.ts"
import type { NixPort, NixShellPort, SessionPort } from "./operation-ports.ts"

export interface SessionRunOptions {
  session: SessionId
  /** Absolute path of the Nix config (the session's shell may be anywhere). */
  configPath: string
  command: string
  onOutput?: (chunk: string) => void
}

export interface SessionRunDeps {
  sessions: SessionPort
  nix: Pick<NixPort, "instantiate"> & NixShellPort
  /** What is happening before the command's output starts, for a spinner. */
  onPhase?: (message: string) => void
}

export interface SessionRunResult {
  exitCode: number
  /** The session did not exist before this run. */
  createdSession: boolean
  /** The session's shell entered `nix-shell CONFIG` for this run. */
  enteredShell: boolean
}

const MARKER = "__chimera_nix_config"
// Plain words stay bare so the line typed into the pane reads like one a person would type.
const word = (s: string) => (/^[\w/.=:@%+,-]+$/.test(s) ? s : shq(s))
const PROBE = `printf '%s\\n%s\\n' "\${${MARKER}-}" "$PWD"`

interface ShellState {
  config: string
  cwd: string
}

async function probe(sessions: SessionPort, id: SessionId): Promise<ShellState> {
  let out = ""
  const { exitCode } = await sessions.runAndWait(id, PROBE, (chunk) => {
    out += chunk
  })
  const [config = "", cwd = ""] = out.split("\n")
  if (exitCode !== 0) throw new ChimeraError("INTERNAL", `session ${id}: could not read its shell's state`)
  return { config, cwd }
}

/** The last lines of the pane, which hold nix-shell's own error when it failed to start. */
async function paneTail(sessions: SessionPort, id: SessionId): Promise<string> {
  const text = await sessions.capture(id).catch(() => "")
  return text.trimEnd().split("\n").slice(-15).join("\n")
}

export async function runInNixShell(opts: SessionRunOptions, deps: SessionRunDeps): Promise<SessionRunResult> {
  const { sessions, nix } = deps
  const { session: id, configPath } = opts
  // Evaluating first turns a broken config into Nix's own error message, before any session is touched.
  deps.onPhase?.(`evaluating ${configPath}`)
  await nix.instantiate(configPath)

  const createdSession = await sessions.createSession(id)
  deps.onPhase?.(`${createdSession ? "created" : "using"} session ${id}`)
  const before = await probe(sessions, id)
  let enteredShell = false
  if (before.config !== configPath) {
    deps.onPhase?.(`entering nix-shell ${configPath}`)
    if (before.config) await sessions.runCommand(id, "exit")
    const init = `${MARKER}=${shq(configPath)}; cd -- ${shq(before.cwd)}`
    const argv = await nix.interactiveShell(configPath, init)
    await sessions.runCommand(id, argv.map(word).join(" "))
    const after = await probe(sessions, id)
    if (after.config !== configPath) {
      const pane = await paneTail(sessions, id)
      throw new ChimeraError(
        "VALIDATION_FAILED",
        `nix-shell ${configPath} did not start in session ${id}; the session shows:\n${pane}`,
      )
    }
    enteredShell = true
  }
  deps.onPhase?.("running")
  const { exitCode } = await sessions.runAndWait(id, opts.command, opts.onOutput)
  return { exitCode, createdSession, enteredShell }
}
