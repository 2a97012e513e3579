// The chat's streamed turns as the CLI reads them: records split anywhere across chunks, any line
// ending, comments skipped, multi-line data joined; a record that outgrows the limit ends the read.
import { describe, expect, test } from "bun:test"
import { readSse, type SseRecord } from "./sse-reader.ts"

function body(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder()
  return new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(enc.encode(chunk))
      c.close()
    },
  })
}

async function read(chunks: string[], max?: number): Promise<SseRecord[]> {
  const out: SseRecord[] = []
  for await (const r of readSse(body(chunks), max)) out.push(r)
  return out
}

describe("SSE reader", () => {
  test("records split across chunks, CRLF, CR and LF, comments and multi-line data", async () => {
    expect(
      await read([
        ": keep-alive\n\nevent: tok",
        'en\r\ndata: {"text":"a"}\r',
        "\n\r\nevent: done\rdata: line1\ndata:line2\n\n",
        "event: cut\ndata: never finished",
      ]),
    ).toEqual([
      { event: "token", data: '{"text":"a"}' },
      { event: "done", data: "line1\nline2" },
    ])
  })

  test("a record's id and retry come with it, for a reconnection to resume from and wait", async () => {
    expect(
      await read(["event: ready\ndata: {}\nretry: 2000\n\n", "id: 7\nevent: heal.failed\ndata: {}\n\n", "data: x\n\n"]),
    ).toEqual([
      { event: "ready", data: "{}", retry: 2000 },
      { event: "heal.failed", data: "{}", id: "7" },
      { event: "message", data: "x" },
    ])
  })

  test("a record larger than the limit ends the read with an error", async () => {
    await expect(read([`data: ${"x".repeat(100)}\n\n`], 50)).rejects.toThrow("larger than 50 bytes")
    await expect(read([`data: ${"x".repeat(100)}`], 50)).rejects.toThrow("longer than 50 bytes")
  })
})
