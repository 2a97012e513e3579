// A loopback relay in front of a control plane that holds every set-desired (PUT /api/nodes/ID/desired)
// until the test lets it through: how the interrupt tests catch a deploy or a rollback at the moment
// its node has switched and only the publish of its desired closure is left. Everything else is
// forwarded at once. A request whose client went away while held is dropped, as the control plane
// would never have seen it.
import type { Server } from "bun"

export interface PublishGate {
  /** The relay's base URL, for CHIMERA_URL. */
  url: string
  /** Resolves once a set-desired is held; each call waits for one arriving after the last reset. */
  arrived(): Promise<void>
  /** Lets every held set-desired through, and forgets them (the next one is held again). */
  release(): void
  stop(): void
}

export function publishGate(controlPlaneUrl: string): PublishGate {
  let held: PromiseWithResolvers<void>[] = []
  let arrived = Promise.withResolvers<void>()
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url)
      const body = req.method === "GET" ? undefined : await req.arrayBuffer()
      if (req.method === "PUT" && /^\/api\/nodes\/[^/]+\/desired$/.test(url.pathname)) {
        const release = Promise.withResolvers<void>()
        held.push(release)
        arrived.resolve()
        await release.promise
        if (req.signal.aborted) return new Response(null, { status: 499 })
      }
      return fetch(`${controlPlaneUrl}${url.pathname}${url.search}`, { method: req.method, headers: req.headers, body })
    },
  })
  return {
    url: server.url.href.replace(/\/$/, ""),
    arrived: () => arrived.promise,
    release() {
      for (const h of held) h.resolve()
      held = []
      arrived = Promise.withResolvers<void>()
    },
    stop() {
      for (const h of held) h.resolve()
      server.stop(true)
    },
  }
}
