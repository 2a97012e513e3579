// Reads a text/event-stream body (the chat's streamed turns, the event stream) into `{event, data}`
// records, as the HTML spec's event-stream format says: lines end in LF, CRLF or CR; `event:` names the
// record, `data:` lines are joined with newlines, `id:` and `retry:` (what a reconnection resumes from
// and waits) come with the record they are in, a blank line dispatches it, lines starting with `:` are
// comments (keep-alives). The server is trusted no further than its format: a record larger than
// `maxEventBytes` ends the read with an error instead of growing memory without bound.
export interface SseRecord {
  event: string
  data: string
  /** The record's `id:`, for a reconnection's Last-Event-ID. */
  id?: string
  /** The record's `retry:`: how long to wait before reconnecting, in ms. */
  retry?: number
}

export class SseError extends Error {
  override readonly name = "SseError"
}

const DEFAULT_MAX_EVENT = 4 * 1024 * 1024

export async function* readSse(
  body: AsyncIterable<Uint8Array>,
  maxEventBytes = DEFAULT_MAX_EVENT,
): AsyncGenerator<SseRecord> {
  const decoder = new TextDecoder()
  let buffer = ""
  let event = ""
  let data: string[] = []
  let id: string | undefined
  let retry: number | undefined
  let size = 0
  // A CR at a chunk's end may be the first half of a CRLF: it is held back until the next chunk.
  const lines = function* (final: boolean) {
    for (;;) {
      const at = buffer.search(/[\r\n]/)
      if (at === -1) return
      if (buffer[at] === "\r" && at === buffer.length - 1 && !final) return
      const line = buffer.slice(0, at)
      buffer = buffer.slice(at + (buffer[at] === "\r" && buffer[at + 1] === "\n" ? 2 : 1))
      yield line
    }
  }
  const take = (line: string): SseRecord | null => {
    if (line === "") {
      const record =
        data.length > 0
          ? {
              event: event || "message",
              data: data.join("\n"),
              ...(id === undefined ? {} : { id }),
              ...(retry === undefined ? {} : { retry }),
            }
          : null
      event = ""
      data = []
      id = undefined
      retry = undefined
      size = 0
      return record
    }
    if (line.startsWith(":")) return null
    const colon = line.indexOf(":")
    const name = colon === -1 ? line : line.slice(0, colon)
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "")
    if (name === "event") event = value
    else if (name === "id" && !value.includes("\0")) id = value
    else if (name === "retry" && /^\d+$/.test(value)) retry = Number(value)
    else if (name === "data") {
      size += value.length
      if (size > maxEventBytes) throw new SseError(`an event of the stream is larger than ${maxEventBytes} bytes`)
      data.push(value)
    }
    return null
  }
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true })
    for (const line of lines(false)) {
      const record = take(line)
      if (record) yield record
    }
    if (buffer.length > maxEventBytes) throw new SseError(`a line of the stream is longer than ${maxEventBytes} bytes`)
  }
  buffer += decoder.decode()
  for (const line of lines(true)) {
    const record = take(line)
    if (record) yield record
  }
  // A record the stream did not finish with a blank line is dropped, as the format says: it may be cut.
}
