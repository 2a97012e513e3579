/** A streamed answer read as text as it arrives (Server-Sent Events, a CLI's stdout). */
export function streamText(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  const stream = {
    /** Everything read so far. */
    text: "",
    /** Reads on until `enough(text)` holds; true when the stream ended first. */
    async until(enough: (text: string) => boolean): Promise<boolean> {
      while (!enough(stream.text)) {
        const { value, done } = await reader.read()
        if (done) return true
        stream.text += decoder.decode(value, { stream: true })
      }
      return false
    },
  }
  return stream
}
