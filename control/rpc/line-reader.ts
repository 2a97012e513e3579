// Lines from a byte stream (the RPC's stdin), each at most `maxBytes` long. A longer line is not
// kept in memory: its bytes are dropped up to the next newline and it is reported as oversized, so a
// writer that never sends a newline cannot grow this process without bound. Lines must be UTF-8; a
// trailing CR is dropped, so CRLF writers work too. A line that is not UTF-8 is a problem, but what
// can be read of it (its bad bytes as U+FFFD) comes with it, so its error can still carry its id.
export type Line = { n: number; text: string } | { n: number; problem: string; readable?: string }

export async function* readLines(stream: AsyncIterable<Uint8Array>, maxBytes: number): AsyncGenerator<Line> {
  const decoder = new TextDecoder("utf-8", { fatal: true })
  const lossy = new TextDecoder("utf-8")
  let parts: Uint8Array[] = []
  let size = 0
  let oversized = false
  let n = 0
  const finish = (): Line => {
    n++
    if (oversized) return { n, problem: `longer than ${maxBytes} bytes` }
    const bytes = Buffer.concat(parts)
    const end = bytes.at(-1) === 0x0d ? bytes.length - 1 : bytes.length
    try {
      return { n, text: decoder.decode(bytes.subarray(0, end)) }
    } catch {
      return { n, problem: "not UTF-8 text", readable: lossy.decode(bytes.subarray(0, end)) }
    }
  }
  const reset = () => {
    parts = []
    size = 0
    oversized = false
  }
  for await (const chunk of stream) {
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(0x0a, start)
      const piece = chunk.subarray(start, nl === -1 ? chunk.length : nl)
      if (!oversized) {
        size += piece.length
        if (size > maxBytes) {
          oversized = true
          parts = []
        } else if (piece.length > 0) parts.push(piece.slice())
      }
      if (nl === -1) break
      yield finish()
      reset()
      start = nl + 1
    }
  }
  if (size > 0 || oversized) yield finish()
}
