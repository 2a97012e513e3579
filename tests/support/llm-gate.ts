// A gate in front of the scripted model (llm-server.ts), at the HTTP boundary like the model itself:
// every request passes through unchanged, except that while the gate is shut a request waits until it
// is opened. Tests use it to hold a turn inside a model call for as long as they need (to steer or
// cancel it mid-turn) without a sleep, and to know when a call has arrived.
export interface LlmGate extends AsyncDisposable {
  /** The base URL to give the control plane instead of the model's (same path layout). */
  baseUrl: string
  /** Requests arriving from now on wait. */
  shut(): void
  /** Lets every waiting request through and keeps the gate open. */
  open(): void
  /** How many requests are waiting at the gate now. */
  waiting(): number
  stop(): Promise<void>
}

export function startLlmGate(targetBaseUrl: string): LlmGate {
  const target = new URL(targetBaseUrl)
  let shut = false
  const held: (() => void)[] = []
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      if (shut) await new Promise<void>((resolve) => held.push(resolve))
      const url = new URL(req.url)
      const prefix = target.pathname.replace(/\/$/, "")
      const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname
      const headers = new Headers(req.headers)
      headers.delete("host")
      return fetch(`${target.origin}${prefix}${path}${url.search}`, {
        method: req.method,
        headers,
        body: req.method === "GET" ? undefined : await req.arrayBuffer(),
        signal: req.signal,
      })
    },
  })
  const open = () => {
    shut = false
    for (const release of held.splice(0)) release()
  }
  const stop = async () => {
    open()
    await server.stop(true)
  }
  return {
    baseUrl: `http://127.0.0.1:${server.port}${target.pathname.replace(/\/$/, "")}`,
    shut: () => {
      shut = true
    },
    open,
    waiting: () => held.length,
    stop,
    [Symbol.asyncDispose]: stop,
  }
}
