// The lines a stdio MCP client sends, screened before the SDK's transport reads them. That transport
// drops a line that is not JSON, or not a JSON-RPC message by its schema (`params: []`, an object id,
// `"jsonrpc": "1.0"`), without any answer, and the client waits for ever. Here each such line gets the
// answer JSON-RPC gives it: -32700 for one that is not JSON (or longer than MAX_LINE), -32602 naming
// the field for a request whose params are wrong (message-guard.ts's check), -32600 for anything
// else; only valid messages reach the transport, unchanged.
import { PassThrough, type Readable, type Writable } from "node:stream"
import { ErrorCode } from "@modelcontextprotocol/sdk/types.js"
import { refusalOf } from "./message-guard.ts"

/** A line longer than this is not read on: its request is answered -32700 and dropped. */
export const MAX_LINE = 4 * 1024 * 1024

/** `input` as the transport should read it; answers to refused lines go straight to `output`. */
export function screenedStdin(input: Readable, output: Writable): PassThrough {
  const passed = new PassThrough()
  const answer = (id: string | number | null, code: number, message: string) =>
    output.write(`${JSON.stringify({ jsonrpc: "2.0", id, error: { code, message } })}\n`)

  const screen = (line: string) => {
    if (line.trim() === "") return
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (error) {
      answer(null, ErrorCode.ParseError, `Parse error: ${(error as Error).message}`)
      return
    }
    const refused = refusalOf(value)
    if (refused === null) passed.write(`${line}\n`)
    else answer(refused.id, refused.code, refused.message)
  }

  let buffer = ""
  let skipping = false
  input.setEncoding("utf8")
  input.on("data", (chunk: string) => {
    buffer += chunk
    for (let end = buffer.indexOf("\n"); end !== -1; end = buffer.indexOf("\n")) {
      const line = buffer.slice(0, end).replace(/\r$/, "")
      buffer = buffer.slice(end + 1)
      if (skipping) skipping = false
      else screen(line)
    }
    if (buffer.length > MAX_LINE) {
      if (!skipping) answer(null, ErrorCode.ParseError, `Parse error: a line longer than ${MAX_LINE} characters`)
      skipping = true
      buffer = ""
    }
  })
  input.on("end", () => {
    if (!skipping) screen(buffer)
    passed.end()
  })
  return passed
}
