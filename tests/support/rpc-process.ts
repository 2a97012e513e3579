// `chimera code --mode rpc` as a child process driven the way an editor drives it: JSON lines written
// to its stdin, every stdout line parsed as JSON as it arrives (a line that is not JSON fails the
// wait that meets it), and waits for the next line that matches, with the lines in between kept.
import { join } from "node:path"
import type { Subprocess } from "bun"

const MAIN = join(import.meta.dir, "../../control/main.ts")

export type RpcLine = Record<string, unknown> & { type: string }

export interface RpcProcess extends AsyncDisposable {
  proc: Subprocess<"pipe", "pipe", "pipe">
  /** Every stdout line so far, parsed. */
  lines: RpcLine[]
  stderr(): string
  /** stdout as it was written, every byte. */
  raw(): string
  /** How many lines have been sent. */
  readonly sent: number
  send(line: object | string): void
  /** The next line from `from` on that matches; returns it and the lines up to and including it. */
  next(match: (l: RpcLine) => boolean, what: string, timeoutMs?: number): Promise<{ line: RpcLine; seen: RpcLine[] }>
  /** The response to command id `id`, and the events before it. */
  response(id: string | number, timeoutMs?: number): Promise<{ line: RpcLine; seen: RpcLine[] }>
  /** Forgets the lines read so far, all of them matched or not (a long session keeps memory flat). */
  forget(): void
  /** Closes stdin and waits for the exit status. */
  end(timeoutMs?: number): Promise<number>
}

export function startRpc(env: Record<string, string>, args: string[] = []): RpcProcess {
  const proc = Bun.spawn([process.execPath, MAIN, "code", "--mode", "rpc", ...args], {
    env: { ...process.env, CHIMERA_CONFIG_FILE: "", ...env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  })
  const lines: RpcLine[] = []
  let partial = ""
  let raw = ""
  let bad: string | null = null
  let err = ""
  const decoder = new TextDecoder()
  void (async () => {
    for await (const chunk of proc.stdout) {
      const text = decoder.decode(chunk, { stream: true })
      raw += text
      partial += text
      for (let nl = partial.indexOf("\n"); nl !== -1; nl = partial.indexOf("\n")) {
        const text = partial.slice(0, nl)
        partial = partial.slice(nl + 1)
        try {
          lines.push(JSON.parse(text) as RpcLine)
        } catch {
          bad ??= text
        }
      }
    }
  })()
  void (async () => {
    for await (const chunk of proc.stderr) err += decoder.decode(chunk, { stream: true })
  })()
  let cursor = 0
  const next: RpcProcess["next"] = async (match, what, timeoutMs = 30_000) => {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      if (bad !== null) throw new Error(`stdout carried a line that is not JSON: ${JSON.stringify(bad)}`)
      while (cursor < lines.length) {
        const line = lines[cursor++] as RpcLine
        if (match(line)) {
          const seen = lines.slice(start, cursor)
          start = cursor
          return { line, seen }
        }
      }
      if (performance.now() > deadline || proc.exitCode !== null)
        throw new Error(
          `no ${what} (exit ${proc.exitCode}); lines since: ${JSON.stringify(lines.slice(start)).slice(0, 3000)}; stderr: ${err}`,
        )
      await Bun.sleep(10)
    }
  }
  let start = 0
  const end = async (timeoutMs = 30_000) => {
    proc.stdin.end()
    const code = await Promise.race([proc.exited, Bun.sleep(timeoutMs).then(() => null)])
    if (code === null) {
      proc.kill("SIGKILL")
      throw new Error(`chimera code did not exit ${timeoutMs} ms after its stdin closed; stderr: ${err}`)
    }
    return code
  }
  let sent = 0
  return {
    proc,
    lines,
    stderr: () => err,
    raw: () => raw,
    get sent() {
      return sent
    },
    send(line) {
      sent++
      proc.stdin.write(`${typeof line === "string" ? line : JSON.stringify(line)}\n`)
      proc.stdin.flush()
    },
    next,
    forget() {
      lines.length = 0
      cursor = 0
      start = 0
    },
    response: (id, timeoutMs) => next((l) => l.type === "response" && l.id === id, `response to ${id}`, timeoutMs),
    end,
    [Symbol.asyncDispose]: async () => {
      if (proc.exitCode === null) proc.kill("SIGKILL")
      await proc.exited
    },
  }
}
