// The fleet as this page knows it: every node, the latest events, the stream's state, and a version
// number views re-render on. Events from the stream update it at once (a `drift.detected` shows the
// node drifted before its next heartbeat lands), then the node is read again from the API; an answer
// older than the event (the heartbeat that reflects it has not arrived yet) keeps the event's status
// until a newer one comes.
import { type Api, seg } from "./api.ts"
import type { StreamState } from "./event-stream.ts"
import { parseShown } from "./shown-json.ts"
import type { FleetEvent, NodeStatus, NodeView } from "./types.ts"

const FEED_SIZE = 500
/** Events from before the page started that it reads at start, to show beside those that come after. */
const BACKLOG = 100
/** Re-reads a node after an event: at once, then while its heartbeat is still older than the event. */
const REREAD_MS = [100, 700, 2000, 5000]
/** Reads due within this long of the first are made with it. */
const SLACK_MS = 250
/**
 * More nodes than this due at once are read with one GET /api/nodes rather than one request each: a
 * change to the whole fleet (a deploy's desired closure, an outage, agents enrolling again) brings an
 * event per node, and reading each on its own spent the user's API rate limit (300 a minute) in seconds.
 */
const ONE_BY_ONE = 3

const STATUS_AFTER: Record<string, NodeStatus> = {
  "drift.detected": "drifted",
  "drift.resolved": "healthy",
  "heal.started": "healing",
  "heal.succeeded": "healthy",
  "heal.failed": "heal-failed",
  "node.unreachable": "unreachable",
}

type Listener = () => void

const hashOf = (path: unknown) => (typeof path === "string" ? path.slice(11, 43) : null)

/** The links a drift report carries (profile, current, booted), as the node view's fields. */
function linksOf(event: FleetEvent): Partial<NodeView> {
  const system = event.data.system as { profile?: unknown; current?: unknown; booted?: unknown } | undefined
  if (!system || typeof system !== "object") return {}
  const path = (p: unknown) => (typeof p === "string" ? p : null)
  return {
    profilePath: path(system.profile),
    profileHash: hashOf(system.profile),
    currentPath: path(system.current),
    currentHash: hashOf(system.current),
    bootedPath: path(system.booted),
    bootedHash: hashOf(system.booted),
  }
}

let preloaded: { token: string; start: Promise<Start | null> } | null = null

/** Where the page starts: the newest event's id (the stream resumes after it), then the fleet. */
interface Start {
  lastEventId: number
  nodes: NodeView[]
}

async function readStart(get: <T>(path: string) => Promise<T>): Promise<Start> {
  // The cursor first: whatever happens after it reaches the page through the stream, and the nodes
  // read next are at least that new.
  const { lastEventId } = await get<{ lastEventId: number }>("/api/events/last-id")
  const { nodes } = await get<{ nodes: NodeView[] }>("/api/nodes")
  return { lastEventId, nodes }
}

/**
 * Starts reading the fleet while sign-in still checks the token (GET /api/auth/me), so the overview
 * does not wait for one round trip after the other. Plain fetch: a refusal here only means no head start.
 */
export function preloadNodes(token: string) {
  const get = async <T>(path: string): Promise<T> => {
    const r = await fetch(path, { headers: { authorization: `Bearer ${token}` }, credentials: "omit" })
    if (!r.ok) throw new Error(String(r.status))
    return parseShown<T>(await r.text())
  }
  preloaded = { token, start: readStart(get).catch(() => null) }
}

export function createFleetStore(api: Api, token: string | null = null) {
  const nodes = new Map<string, NodeView>()
  /** What an event said of a node that its stored record does not show yet, with the event's time. */
  const pending = new Map<string, { status: NodeStatus; at: string; links: Partial<NodeView> }>()
  /** Nodes to read again: when, and which of REREAD_MS that read is. One timer wakes for them all. */
  const due = new Map<string, { attempt: number; at: number }>()
  let wake: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  let feed: FleetEvent[] = []
  let stream: StreamState = "connecting"
  let version = 0
  let loaded = false
  let loadError: string | null = null
  const listeners = new Set<Listener>()
  const eventListeners = new Set<(e: FleetEvent) => void>()

  const changed = () => {
    version++
    for (const l of listeners) l()
  }

  /**
   * The latest events up to the stream's starting point, under any the stream has brought meanwhile,
   * so the page does not start empty. Read after the fleet: the first paint does not wait for it.
   */
  const readBacklog = async (lastEventId: number) => {
    try {
      const { events } = await api.get<{ events: FleetEvent[] }>(`/api/events?tail=true&limit=${BACKLOG}`)
      const seen = new Set(feed.map((e) => e.id))
      const older = events.filter((e) => e.id <= lastEventId && !seen.has(e.id)).reverse()
      feed = [...feed, ...older].slice(0, FEED_SIZE)
      changed()
    } catch {
      // the page goes on with the events that come from now on
    }
  }

  const shown = (n: NodeView): NodeView => {
    const p = pending.get(n.id)
    return p ? { ...n, ...p.links, status: p.status } : n
  }

  const put = (n: NodeView) => {
    const p = pending.get(n.id)
    // The record reflects the event once a heartbeat newer than it has been taken.
    if (p && n.lastHeartbeat !== null && n.lastHeartbeat >= p.at) pending.delete(n.id)
    nodes.set(n.id, n)
  }

  const schedule = () => {
    clearTimeout(wake)
    if (stopped || due.size === 0) return
    let next = Number.POSITIVE_INFINITY
    for (const d of due.values()) next = Math.min(next, d.at)
    wake = setTimeout(() => void flush(), Math.max(0, next - Date.now()))
  }

  const reread = (id: string, attempt = 0) => {
    const delay = REREAD_MS[attempt]
    if (delay === undefined) {
      due.delete(id)
      pending.delete(id)
      changed()
      return
    }
    due.set(id, { attempt, at: Date.now() + delay })
    schedule()
  }

  /** Reads the nodes that are due: one by one when they are few, else the fleet in one request. */
  const flush = async () => {
    const until = Date.now() + SLACK_MS
    const batch = [...due].filter(([, d]) => d.at <= until)
    for (const [id] of batch) due.delete(id)
    schedule()
    try {
      if (batch.length > ONE_BY_ONE) {
        const { nodes: list } = await api.get<{ nodes: NodeView[] }>("/api/nodes")
        for (const n of list) put(n)
      } else {
        await Promise.all(
          batch.map(([id]) =>
            api.get<NodeView>(`/api/nodes/${seg(id)}`).then(put, () => {
              // a node revoked meanwhile, or a blip: the next event or refresh settles it
            }),
          ),
        )
      }
      changed()
    } catch {
      // a blip: the next read, event or refresh settles it
    }
    if (stopped) return
    // A node with a newer event meanwhile has its own read scheduled already.
    for (const [id, d] of batch) if (!due.has(id) && (pending.has(id) || d.attempt === 0)) reread(id, d.attempt + 1)
  }

  return {
    version: () => version,
    loaded: () => loaded,
    loadError: () => loadError,
    streamState: () => stream,
    node: (id: string) => {
      const n = nodes.get(id)
      return n ? shown(n) : undefined
    },
    nodes: () => [...nodes.values()].map(shown),
    feed: () => feed,

    /** The newest event's id when the page started (the stream's first Last-Event-ID), and the fleet. */
    async start(): Promise<number> {
      const head = preloaded?.token === token ? preloaded.start : null
      preloaded = null
      try {
        const start = (await head) ?? (await readStart(api.get))
        for (const n of start.nodes) put(n)
        loaded = true
        loadError = null
        changed()
        void readBacklog(start.lastEventId)
        return start.lastEventId
      } catch (error) {
        loadError = error instanceof Error ? error.message : String(error)
        changed()
        throw error
      }
    },

    async refresh() {
      try {
        const { nodes: list } = await api.get<{ nodes: NodeView[] }>("/api/nodes")
        const seen = new Set<string>()
        for (const n of list) {
          put(n)
          seen.add(n.id)
        }
        for (const id of nodes.keys()) if (!seen.has(id)) nodes.delete(id)
        loaded = true
        loadError = null
      } catch (error) {
        loadError = error instanceof Error ? error.message : String(error)
      }
      changed()
    },

    setStreamState(state: StreamState) {
      stream = state
      changed()
    },

    apply(event: FleetEvent) {
      // With replicas an event can reach the stream after the backlog read that already had it.
      feed = [event, ...feed.filter((e) => e.id !== event.id)].slice(0, FEED_SIZE)
      const id = event.nodeId
      if (id !== null && event.type === "node.removed") {
        // Gone from the fleet: its record now reads as no node at all.
        due.delete(id)
        pending.delete(id)
        nodes.delete(id)
      } else if (id !== null) {
        const status = STATUS_AFTER[event.type]
        if (status) pending.set(id, { status, at: event.at, links: linksOf(event) })
        reread(id)
      }
      for (const l of eventListeners) l(event)
      changed()
    },

    /** Called with every event after the store has taken it (views that read more than nodes). */
    onEvent(listener: (e: FleetEvent) => void) {
      eventListeners.add(listener)
      return () => void eventListeners.delete(listener)
    },

    subscribe(listener: Listener) {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },

    stop() {
      stopped = true
      clearTimeout(wake)
      due.clear()
    },
  }
}

export type FleetStore = ReturnType<typeof createFleetStore>
