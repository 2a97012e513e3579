// A terminal, as far as a README is concerned: one long-lived bash that reads commands one at a time,
// so variables, `cd` and background jobs carry over from one command to the next, and a command that
// opens a shell of its own (a test node's) takes over the input until it exits, as it would on a
// screen. Output and errors are one stream, as a reader sees them. Each command is followed by a
// marker line carrying its exit status, which also tells where its output ends; `$?` is put back
// afterwards, so `echo $?` works as typed.
import type { Subprocess } from "bun"

export interface CommandResult {
  output: string
  code: number
}

export interface ShellSession extends AsyncDisposable {
  /** Runs one command (stdin closed) and returns what it printed and its exit status. */
  run(command: string, timeoutMs: number): Promise<CommandResult>
  /** Types a line that starts a shell of its own; returns once that shell answers. */
  enter(command: string, timeoutMs: number): Promise<string>
  /** Everything printed from character `from` on (background jobs keep writing). */
  since(from: number): string
  /** How many characters have been printed so far. */
  readonly length: number
  close(): Promise<void>
}

export function startShell(opts: { cwd: string; env: Record<string, string> }): ShellSession {
  const proc: Subprocess<"pipe", "pipe", "pipe"> = Bun.spawn(["bash", "--norc", "--noprofile"], {
    cwd: opts.cwd,
    env: opts.env,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  })
  let text = ""
  const decoder = new TextDecoder()
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true })
  }
  void pump(proc.stdout)
  void pump(proc.stderr)
  let n = 0
  const type = (line: string) => {
    proc.stdin.write(`${line}\n`)
    proc.stdin.flush()
  }
  // One stream from here on, in the order things were written.
  type("exec 2>&1")

  const until = async (re: RegExp, from: number, timeoutMs: number, what: string) => {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const m = re.exec(text.slice(from))
      if (m) return { m, end: from + (m.index ?? 0) }
      if (proc.exitCode !== null)
        throw new Error(`the shell exited (${proc.exitCode}) during ${what}:\n${text.slice(from)}`)
      if (performance.now() > deadline)
        throw new Error(`no end of ${what} after ${timeoutMs} ms; printed so far:\n${text.slice(from)}`)
      await Bun.sleep(20)
    }
  }

  const session: ShellSession = {
    get length() {
      return text.length
    },
    since: (from) => text.slice(from),
    async run(command, timeoutMs) {
      const id = `${process.pid}-${++n}`
      const from = text.length
      type(`{ ${command}\n} </dev/null; __rc=$?; printf '\\n@@end ${id} %s@@\\n' "$__rc"; (exit $__rc)`)
      const { m, end } = await until(new RegExp(`\\n@@end ${id} (\\d+)@@\\n`), from, timeoutMs, command)
      return { output: text.slice(from, end), code: Number(m[1]) }
    },
    async enter(command, timeoutMs) {
      const id = `${process.pid}-${++n}`
      const from = text.length
      type(command)
      type(`printf '@@ready ${id}@@\\n'`)
      const { end } = await until(new RegExp(`@@ready ${id}@@\\n`), from, timeoutMs, command)
      return text.slice(from, end)
    },
    async close() {
      if (proc.exitCode !== null) return
      // Background jobs die with their terminal; once per shell, should a node's still be open on top.
      for (let i = 0; i < 4; i++) type("kill $(jobs -p) 2>/dev/null; wait; exit 0")
      proc.stdin.end()
      const exited = await Promise.race([proc.exited, Bun.sleep(15_000).then(() => null)])
      if (exited === null) proc.kill("SIGKILL")
    },
    [Symbol.asyncDispose]: () => session.close(),
  }
  return session
}
