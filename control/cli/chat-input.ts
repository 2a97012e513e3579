// What the person types into `chimera chat`. On a terminal: a line editor with history at the `You>`
// prompt (node:readline; Tab completes slash commands), where Ctrl+D ends the chat and Ctrl+C only
// clears the line; while an answer streams, the keyboard is read raw so Ctrl+C reaches us as a key
// and cancels that answer instead of ending the process. From a pipe: one message per line, end of
// input ends the chat, and SIGINT plays Ctrl+C's part. Each readline interface lives for one line
// only, so the question prompts (@clack/prompts) have the keyboard to themselves in between.
import { createInterface } from "node:readline"
import { color, promptStream, say, styled } from "./output.ts"

export interface ChatInput {
  readonly interactive: boolean
  /** The next line typed at `prompt`, "" after a Ctrl+C, null at the end of input (Ctrl+D, EOF). */
  line(prompt: string): Promise<string | null>
  /** Calls `onInterrupt` on every Ctrl+C until the returned function is called; other keys are dropped. */
  watchInterrupt(onInterrupt: () => void): () => void
  close(): void
}

/** The line editor and prompts need a terminal on both sides; otherwise lines are read as from a pipe. */
export function createChatInput(stdin: NodeJS.ReadStream = process.stdin): ChatInput {
  return stdin.isTTY && process.stdout.isTTY ? _terminalInput(stdin) : _pipeInput(stdin)
}

const SLASH = ["/help", "/node ", "/object ", "/incident ", "/status", "/clear", "/quit", "/exit"]

/** Tab completes a slash command's name; anything else is left as typed. */
const _complete = (line: string): [string[], string] =>
  line.startsWith("/") && !line.includes(" ") ? [SLASH.filter((c) => c.startsWith(line)), line] : [[], line]

function _terminalInput(stdin: NodeJS.ReadStream): ChatInput {
  let history: string[] = []
  return {
    interactive: true,
    line(prompt) {
      return new Promise((resolve) => {
        const rl = createInterface({
          input: stdin,
          output: promptStream,
          terminal: true,
          history,
          historySize: 200,
          removeHistoryDuplicates: true,
          completer: _complete,
        })
        let settled = false
        const settle = (value: string | null) => {
          if (settled) return
          settled = true
          history = [...(rl as unknown as { history: string[] }).history]
          rl.close()
          resolve(value)
        }
        rl.on("line", (line) => settle(line))
        rl.on("SIGINT", () => {
          say(`${color.dim("^C (Ctrl+D or /quit leaves the chat)")}\n`)
          settle("")
        })
        rl.on("close", () => {
          if (!settled) say("\n")
          settle(null)
        })
        rl.setPrompt(styled(prompt))
        rl.prompt()
      })
    },
    watchInterrupt(onInterrupt) {
      const onData = (chunk: Buffer | string) => {
        if (String(chunk).includes("\x03")) onInterrupt()
      }
      stdin.setRawMode(true)
      stdin.on("data", onData)
      stdin.resume()
      const onSignal = () => onInterrupt()
      process.on("SIGINT", onSignal)
      return () => {
        stdin.off("data", onData)
        process.off("SIGINT", onSignal)
        stdin.setRawMode(false)
        stdin.pause()
      }
    },
    close() {
      stdin.pause()
    },
  }
}

function _pipeInput(stdin: NodeJS.ReadStream): ChatInput {
  const rl = createInterface({ input: stdin, terminal: false, crlfDelay: Number.POSITIVE_INFINITY })
  const lines = rl[Symbol.asyncIterator]()
  return {
    interactive: false,
    async line(prompt) {
      const next = await lines.next()
      if (next.done) return null
      // A transcript read from a pipe shows what was asked, as a terminal would have.
      say(`${prompt}${next.value}\n`)
      return next.value
    },
    watchInterrupt(onInterrupt) {
      const onSignal = () => onInterrupt()
      process.on("SIGINT", onSignal)
      return () => process.off("SIGINT", onSignal)
    },
    close() {
      rl.close()
    },
  }
}
