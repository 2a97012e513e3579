// `chimera exec --targets T [SSH flags] [--json] -- COMMAND`: one command on many nodes over SSH, at
// most --parallel at a time. Output lines come as each target finishes, prefixed by the target's name
// (stdout to stdout, stderr and failures to stderr), then one summary line; the exit code is 1 if any
// target failed to connect or exited non-zero. `--json` prints `{"results": [...], "summary", "duration"}`
// in target order, named as `nodes run --json` names them (control/domain/command-results.ts).
import { defineCommand } from "citty"
import { type CommandStatus, commandResults, type NodeCommandResult, seconds } from "../domain/command-results.ts"
import { mapLimit } from "../domain/map-limit.ts"
import type { ExecResult } from "../domain/operation-ports.ts"
import { keepRecord } from "./cli-store.ts"
import { CliError } from "./errors.ts"
import { commandWords } from "./flags.ts"
import { exitOnInterrupt } from "./interrupt.ts"
import { color, field, prefixed, printJson, say, warn } from "./output.ts"
import { parseSshFlags, sshArgs } from "./ssh-flags.ts"

function _print(r: ExecResult, width: number): void {
  const name = color.bold(r.target.name.padEnd(width))
  say(prefixed(name, r.stdout, color.dim("|")))
  warn(prefixed(name, r.stderr, color.yellow("!")))
  // Failure messages start with the target's name for logs and JSON; here the prefix already says it.
  const message = r.failure?.message.replace(`${r.target.name}: `, "")
  if (r.failure) warn(`${name} ${color.red("✗")} ${r.failure.kind}: ${field(message ?? "")}\n`)
  else if (!r.ok) warn(`${name} ${color.red("✗")} exited ${r.exitCode}\n`)
}

/** How a result ended, in the words `nodes run` uses; `failure` keeps the SSH side's reason. */
function _status(r: ExecResult): CommandStatus {
  // A target that never completed the handshake was not reached; `timeout` is a command's, as in the API.
  if (r.failure?.kind === "timeout") return r.failure.phase === "connect" ? "offline" : "timeout"
  if (r.failure?.kind === "unreachable") return "offline"
  return r.ok ? "ok" : "failed"
}

/**
 * A result as `--json` prints it: the fields `nodes run --json` and the API's /api/fleet/run give
 * (`node`, `status`, `success`, `exit_code`, `duration`), and exec's own that came first, kept for the
 * scripts that read them: the target by the name it was given (as generations and rollback give it),
 * `ok`, `exitCode`, `ms`, `failure`.
 */
function _jsonResult(r: ExecResult) {
  const { target, ok, exitCode, stdout, stderr, ms, failure } = r
  const shared: Omit<NodeCommandResult, "duration"> = {
    node: target.name,
    status: _status(r),
    success: ok,
    exit_code: exitCode,
    stdout,
    stderr,
  }
  return { ...shared, duration: seconds(ms), target: target.name, ok, exitCode, ms, ...(failure && { failure }) }
}

function _summary(results: ExecResult[], ms: number): string {
  const failed = results.filter((r) => !r.ok)
  const head = `${results.length} target${results.length === 1 ? "" : "s"}: ${results.length - failed.length} ok`
  const tail = failed.length
    ? `, ${color.red(`${failed.length} failed`)} (${failed
        .map((r) => `${r.target.name}: ${r.failure?.kind ?? `exit ${r.exitCode}`}`)
        .join(", ")})`
    : ""
  return `${head}${tail} in ${(ms / 1000).toFixed(2)} s\n`
}

export default defineCommand({
  meta: { name: "exec", description: "Run one command on many nodes over SSH" },
  args: {
    command: { type: "positional", description: "The command (after --), run by the login shell", required: false },
    ...sshArgs,
    json: { type: "boolean", description: 'Print JSON: {"results": [...], "summary", "duration"}, in target order' },
  },
  async run({ args }) {
    const command = commandWords(args._)
    if (command === "") throw new CliError("no command given: chimera exec --targets T -- COMMAND", "E_ARG")
    const ssh = await parseSshFlags(args)
    const executor = ssh.executor()
    const t0 = performance.now()
    const width = Math.max(...ssh.targets.map((t) => t.name.length))
    // Ctrl-C closes the connections, but sshd does not stop a command whose client went away, and
    // will not signal a root login's: it goes on until its `timeout` wrapper kills it. Say so, and where.
    // Targets still queued behind --parallel never start: they are named apart.
    const waiting = new Set<string>()
    const queued = new Set(ssh.targets.map((t) => t.name))
    const seconds = ssh.timeoutMs / 1000
    const release = exitOnInterrupt(() => {
      const notStarted = queued.size > 0 ? `; not started on ${[...queued].join(", ")}` : ""
      return waiting.size === 0
        ? `the command is not recorded; every target it started on had answered${notStarted}`
        : `the command is not recorded, and it may still run on ${[...waiting].join(", ")} (no answer yet) until --timeout (${seconds} s) kills it there${notStarted}`
    })
    let results: ExecResult[]
    try {
      results = await mapLimit(ssh.targets, ssh.parallel, async (t) => {
        queued.delete(t.name)
        waiting.add(t.name)
        const r = await executor.exec(t, command, { stopOnNode: true })
        waiting.delete(t.name)
        if (!args.json) _print(r, width)
        return r
      })
    } finally {
      release()
      await executor.close()
    }
    if (args.json) printJson(commandResults(results.map(_jsonResult), performance.now() - t0))
    else warn(_summary(results, performance.now() - t0))
    if (results.some((r) => !r.ok)) process.exitCode = 1
    await keepRecord("command", (store) =>
      store.recordOperation(
        "exec",
        results.map((r) => ({
          target: r.target.name,
          command,
          ok: r.ok,
          detail: { exitCode: r.exitCode, failure: r.failure?.kind ?? null },
        })),
      ),
    )
  },
})
