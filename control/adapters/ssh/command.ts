// One command on one open SSH connection: an exec channel, its output collected, its exit status read.
// The time left of the target's budget bounds it; when it runs out the remote process is sent SIGKILL
// and the channel closed, and what it printed so far is kept, since the last lines before a hang are
// usually the useful ones. OpenSSH honours "signal" requests since 7.9, but only in a privilege-separated
// session: it refuses them for root logins ("session signalling requires privilege separation"), so an
// operator's command (ExecOptions.stopOnNode) is also wrapped in coreutils' `timeout` on the node
// (stoppedOnNode), which kills it and its process group at the same budget whoever the login is.
import type { Client, ClientChannel } from "ssh2"
import type { Target } from "../../domain/operation-ports.ts"
import { type Failure, timeoutFailure } from "./failure.ts"

export interface CommandOutcome {
  exitCode: number | null
  stdout: string
  stderr: string
  failure?: Failure
  /** The channel could not be opened at all (a pooled connection that died; worth one retry). */
  channelFailed?: boolean
}

/** Output of each stream kept beyond this is left out from its middle (with a note), unless the executor says less. */
export const MAX_OUTPUT_BYTES = 16 * 1024 * 1024

/** The parts of ssh2's channel that send a request whatever the state of our side of the stream. */
interface _RawChannel {
  outgoing: { id: number; state: string }
  _client: { _protocol: { signal(channel: number, name: string): void } }
}

// ClientChannel.signal() sends nothing once the stream is no longer writable, and every command's
// stdin is ended at once; a channel request is still valid after our EOF (RFC 4254 5.3), so the
// request goes out through ssh2's protocol object, as signal() itself would send it.
function _kill(channel: ClientChannel) {
  const raw = channel as unknown as _RawChannel
  // "eof": our side ended stdin; "closing" and "closed": the channel is going, and so is the request.
  if (raw.outgoing.state === "open" || raw.outgoing.state === "eof")
    raw._client._protocol.signal(raw.outgoing.id, "KILL")
}

/**
 * Output kept up to `max` bytes: the first half and the last half of it, since a command's last lines
 * (the error it ended with) matter as much as its first; what lies between is left out with a note.
 */
function _collector(max: number) {
  const headMax = Math.ceil(max / 2)
  const tailMax = max - headMax
  const head: Buffer[] = []
  let headSize = 0
  const tail: Buffer[] = []
  let tailSize = 0
  let dropped = 0
  return {
    push(chunk: Buffer) {
      if (headSize < headMax) {
        const room = headMax - headSize
        head.push(chunk.subarray(0, room))
        headSize += Math.min(chunk.length, room)
        if (chunk.length <= room) return
        chunk = chunk.subarray(room)
      }
      tail.push(chunk)
      tailSize += chunk.length
      // Whole chunks leave the front while the rest still holds the last tailMax bytes.
      while (tail.length > 1 && tailSize - (tail[0] as Buffer).length >= tailMax) {
        const gone = tail.shift() as Buffer
        tailSize -= gone.length
        dropped += gone.length
      }
    },
    text: () => {
      const first = Buffer.concat(head).toString("utf8")
      const kept = Buffer.concat(tail)
      const cut = Math.max(0, kept.length - tailMax)
      const last = kept.subarray(cut).toString("utf8")
      const left = dropped + cut
      return left === 0 ? first + last : `${first}\n[${left} bytes of output left out]\n${last}`
    },
  }
}

// What a login shell other than sh (fish, tcsh) reads otherwise inside '…': the quote itself, `\`
// (fish takes `\\` and `\'` there as escapes), a newline (csh allows none there) and `!` (csh's history).
const _UNSAFE = /['\\\n!]/g

/**
 * `command` as the login shell runs it, under `timeout -s KILL` for the budget's seconds (rounded up,
 * so the control plane has given up first): `timeout` makes its own process group and kills all of
 * it, so what the command started in the background goes too. A node without `timeout` (coreutils
 * is in every NixOS system) runs the command as before. sshd hands the wrapper to the login shell,
 * which may be fish or tcsh, so what that shell reads is only `exec /bin/sh -c '…' sh '…'`: two
 * single-quoted words in which nothing is read differently by any shell: the characters that would
 * be go as printf's octal escapes (`\0047` for `'`), which sh turns back. The inner shell is the login shell again, so the
 * command reads exactly as it would unwrapped.
 */
export function stoppedOnNode(command: string, budgetMs: number): string {
  const seconds = Math.max(1, Math.ceil(budgetMs / 1000))
  const encoded = command.replace(_UNSAFE, (ch) => `\\0${ch.charCodeAt(0).toString(8).padStart(3, "0")}`)
  const run = `"$s" -c "$c"`
  const script = `s=\${SHELL:-/bin/sh}; c=$(printf "%b" "$1"); if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL ${seconds} ${run}; else exec ${run}; fi`
  return `exec /bin/sh -c '${script}' sh '${encoded}'`
}

export function runCommand(
  client: Client,
  t: Target,
  command: string,
  budgetMs: number,
  stdin?: string,
  maxOutputBytes = MAX_OUTPUT_BYTES,
  /** The timeout as the caller gave it, for the message: `budgetMs` is what the connection left of it. */
  givenMs = budgetMs,
): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    const out = _collector(maxOutputBytes)
    const err = _collector(maxOutputBytes)
    let channel: ClientChannel | null = null
    let code: number | null = null
    let signal: string | null = null
    let done = false
    const finish = (extra: Partial<CommandOutcome> = {}) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve({ exitCode: code, stdout: out.text(), stderr: err.text(), ...extra })
    }
    const timer = setTimeout(
      () => {
        if (channel) {
          _kill(channel)
          channel.close()
        }
        finish({ exitCode: null, failure: timeoutFailure(t, "command", givenMs) })
      },
      Math.max(1, budgetMs),
    )
    client.exec(command, (error, stream) => {
      if (error)
        return finish({ channelFailed: true, failure: { kind: "error", message: `${t.name}: ${error.message}` } })
      channel = stream
      stream.on("data", (d: Buffer) => out.push(d))
      stream.stderr.on("data", (d: Buffer) => err.push(d))
      stream.on("exit", (c: number | null, sig?: string) => {
        code = typeof c === "number" ? c : null
        signal = sig ?? null
      })
      stream.on("close", () => {
        if (signal)
          return finish({
            exitCode: null,
            failure: { kind: "error", message: `${t.name}: the command was killed by SIG${signal}` },
          })
        // No exit status at all: the connection went (sshd killed, the node gone) while the command ran,
        // which may still be running there; not an exit code of its own, which a caller would read as
        // the command's answer.
        if (code === null)
          return finish({
            failure: {
              kind: "unreachable",
              message: `${t.name}: the connection closed before the command exited; it may still be running on the node`,
            },
          })
        finish()
      })
      if (stdin !== undefined) stream.end(stdin)
      else stream.end()
    })
  })
}
