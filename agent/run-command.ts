// A `run` command from the control plane, executed on this node: `/bin/sh -c COMMAND` as the agent's
// own user (root on a NixOS node), stdin closed, in a session of its own (setsid) so that a timeout or
// the agent's shutdown SIGKILLs the whole process group, not only the shell. A cancel from its caller
// sends the group SIGTERM first, as ssh's closed session hangs one up, so what it runs may clean up;
// SIGKILL follows after CANCEL_GRACE_MS if the shell has not ended. Its working directory is
// a fresh empty 0700 directory, removed afterwards: the command registry rates a write to a relative
// path as the working directory's business, which `/` would make a write anywhere. A background child
// still holding the output pipes when the shell exits is killed with the group after a short grace.
// stdout and stderr are each kept up to 64 KiB (the wire's bound) and drained past that, so a chatty
// command can neither block on a full pipe nor grow the agent's memory; what was dropped is said at
// the end.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createLogger } from "../protocol/log.ts"

const log = createLogger("run")

/** Per stream, in bytes, with room for the truncation note under the wire's 65,536 characters. */
export const OUTPUT_CAP_BYTES = 64 * 1024 - 256
/** After the shell exits, how long a background child that kept the pipes open is waited for. */
const DRAIN_GRACE_MS = 1000
/** After a cancel's SIGTERM, how long the shell may take to end before its group is SIGKILLed. */
export const CANCEL_GRACE_MS = 3000

export interface RunResult {
  /** null when the process was killed by a signal (the timeout's included) or could not start. */
  exitCode: number | null
  stdout: string
  stderr: string
  timedOut: boolean
  /** Stopped by its `cancel` signal. */
  cancelled: boolean
  durationMs: number
}

export interface RunOptions {
  timeoutMs: number
  /** Aborting kills the process group (the agent is stopping). */
  signal?: AbortSignal
  /** Aborting stops the process group: SIGTERM, then SIGKILL after CANCEL_GRACE_MS (its caller cancelled it). */
  cancel?: AbortSignal
  shell?: string
}

/** Reads a stream to its end, keeping the first `cap` bytes; `stop()` gives up on the rest. */
function capture(stream: ReadableStream<Uint8Array>, cap: number) {
  const chunks: Uint8Array[] = []
  let kept = 0
  let dropped = 0
  const reader = stream.getReader()
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        const room = cap - kept
        if (room > 0) {
          const part = value.byteLength > room ? value.subarray(0, room) : value
          chunks.push(part)
          kept += part.byteLength
        }
        dropped += Math.max(0, value.byteLength - Math.max(0, room))
      }
    } catch {
      // cancelled: a background child still holds the pipe
    }
  })()
  return {
    done,
    stop: () => reader.cancel().catch(() => {}),
    text() {
      const text = Buffer.concat(chunks).toString("utf8")
      return dropped > 0 ? `${text}\n[chimera: output truncated, ${dropped} more bytes dropped]` : text
    },
  }
}

/**
 * SIGKILL (or `signal`) for a process spawned with `detached: true` and everything it started: setsid
 * made it its group's leader, so the negative pid reaches the whole group (the process alone if that
 * fails).
 */
export function killProcessGroup(
  proc: { pid: number; kill(signal?: NodeJS.Signals): void },
  signal: NodeJS.Signals = "SIGKILL",
): void {
  try {
    process.kill(-proc.pid, signal)
  } catch {
    proc.kill(signal)
  }
}

export async function runShell(command: string, opts: RunOptions): Promise<RunResult> {
  const t0 = performance.now()
  let scratch: string
  try {
    scratch = await mkdtemp(join(tmpdir(), "chimera-run-"))
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err)
    return {
      exitCode: null,
      stdout: "",
      stderr: `cannot make a working directory: ${error}`,
      timedOut: false,
      cancelled: false,
      durationMs: 0,
    }
  }
  try {
    return await runIn(scratch, command, opts, t0)
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch((error) =>
      log.warn("cannot remove a command's working directory", { dir: scratch, error: String(error) }),
    )
  }
}

async function runIn(cwd: string, command: string, opts: RunOptions, t0: number): Promise<RunResult> {
  const elapsed = () => Math.round(performance.now() - t0)
  let proc: ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">>
  try {
    proc = Bun.spawn([opts.shell ?? "/bin/sh", "-c", command], {
      cwd,
      // The live environment, from which main.ts removed the join token (Bun's default is the one at start).
      env: process.env,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      detached: true,
    })
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err)
    return {
      exitCode: null,
      stdout: "",
      stderr: `cannot start /bin/sh: ${error}`,
      timedOut: false,
      cancelled: false,
      durationMs: elapsed(),
    }
  }
  const out = capture(proc.stdout, OUTPUT_CAP_BYTES)
  const err = capture(proc.stderr, OUTPUT_CAP_BYTES)
  let timedOut = false
  const killGroup = () => killProcessGroup(proc)
  const timer = setTimeout(() => {
    timedOut = true
    killGroup()
  }, opts.timeoutMs)
  const onAbort = () => killGroup()
  opts.signal?.addEventListener("abort", onAbort, { once: true })
  let cancelled = false
  let forced = false
  let grace: ReturnType<typeof setTimeout> | undefined
  const onCancel = () => {
    cancelled = true
    killProcessGroup(proc, "SIGTERM")
    // Only while the shell runs is its group sure to exist: its id cannot have been handed on.
    grace = setTimeout(() => {
      forced = true
      killGroup()
    }, CANCEL_GRACE_MS)
  }
  if (opts.cancel?.aborted) onCancel()
  else opts.cancel?.addEventListener("abort", onCancel, { once: true })
  try {
    await proc.exited
  } finally {
    clearTimeout(timer)
    clearTimeout(grace)
    opts.signal?.removeEventListener("abort", onAbort)
    opts.cancel?.removeEventListener("abort", onCancel)
  }
  // The shell is gone; its output is in the pipes unless a background child keeps them open. The
  // grace timer is cleared, not left to run out: a pending sleep would hold this whole call (the
  // process, its streams, the output) for the rest of the grace after every command.
  let drainGrace: ReturnType<typeof setTimeout> | undefined
  const drained = await Promise.race([
    Promise.all([out.done, err.done]).then(() => true),
    new Promise<false>((resolve) => {
      drainGrace = setTimeout(() => resolve(false), DRAIN_GRACE_MS)
    }),
  ])
  clearTimeout(drainGrace)
  if (!drained) {
    // Something the shell started still holds the pipes, so the group still exists (and its id cannot
    // have been handed to another process): it goes, as at a timeout. A child that let go of the pipes
    // (`nohup … >/dev/null 2>&1 &`) asked to outlive the command and is left alone.
    killGroup()
    await Promise.all([out.stop(), err.stop()])
    log.debug("background children held the output pipes after the shell exited: killed", { pid: proc.pid })
  }
  let stderr = err.text()
  const note = (text: string) => {
    stderr += `${stderr && !stderr.endsWith("\n") ? "\n" : ""}[chimera: ${text}]`
  }
  if (timedOut) note(`timed out after ${(opts.timeoutMs / 1000).toFixed(1)} s; process group killed`)
  else if (cancelled)
    note(
      forced
        ? `cancelled; process group sent SIGTERM, then SIGKILL after ${CANCEL_GRACE_MS / 1000} s`
        : "cancelled; process group sent SIGTERM",
    )
  else if (proc.signalCode) note(`killed by ${proc.signalCode}`)
  return { exitCode: proc.exitCode, stdout: out.text(), stderr, timedOut, cancelled, durationMs: elapsed() }
}
