// The dashboard's rows from a control plane (CHIMERA_URL and its token, as every other command): the
// node list, fetched again whenever the event stream (/api/events/stream) says something happened, and
// every `interval` seconds whatever it says, since heartbeats change ages and statuses without events
// and a stream can drop. A stream that fails is reopened after a pause; the poll goes on meanwhile.
// The stream opening or dropping is news in itself: a read then says at once whether the control plane
// is gone (and what changed while the stream was down), whatever the interval. A read that gets no
// answer in READ_TIMEOUT_MS fails, so a hung control plane or a dead link shows as one, not as a
// calm screen of old rows.

import { terminalLine as sanitize } from "../../protocol/terminal-text.ts"
import { apiClient, call, controlToken, controlUrl } from "../cli/client.ts"
import type { NodeView } from "../domain/node.ts"
import type { DashRow } from "./model.ts"

export interface RowSource {
  readonly name: string
  /** One read of every node. */
  read(): Promise<DashRow[]>
  /** Calls `update` with fresh rows (or the error that kept them from coming) until stopped. */
  follow(update: (rows: DashRow[] | null, error: string | null) => void): { stop(): void }
}

const short = (hash: string | null) => (hash ? hash.slice(0, 12) : "-")
const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`

/** Profile drift: the profile is not the desired closure; runtime drift: what runs is not the profile. */
function driftOf(n: NodeView): string[] {
  if (!n.desiredPath) return []
  const kinds: string[] = []
  if (n.profilePath !== n.desiredPath) kinds.push("profile-drift")
  if (n.currentPath !== n.profilePath) kinds.push("runtime-drift")
  return kinds
}

const text = (v: string | null | undefined) => sanitize(v ?? "-")

function nodeDetail(n: NodeView, status: string): [string, string][] {
  const detail: [string, string][] = [
    ["node", text(n.id)],
    ["hostname", text(n.hostname)],
    ["status", status],
    ["phase", text(n.phase)],
    ["desired", text(n.desiredPath)],
    ["profile", text(n.profilePath)],
    ["current", text(n.currentPath)],
    ["booted", `${text(n.bootedPath)}${n.rebootRequired ? "  (reboot needed)" : ""}`],
    ["heartbeat", `${text(n.lastHeartbeat)} (every ${n.heartbeatIntervalSeconds}s)`],
    ["agent", text(n.agentVersion)],
    ["enrolled", text(n.enrolledAt)],
  ]
  if (n.health) {
    detail.push(
      ["load", n.health.load.map((l) => l.toFixed(2)).join(" ")],
      ["memory", `${gib(n.health.memory.availableBytes)} free of ${gib(n.health.memory.totalBytes)}`],
      [
        "disk",
        `${gib(n.health.disk.freeBytes)} free of ${gib(n.health.disk.totalBytes)} on ${text(n.health.disk.path)}`,
      ],
    )
  }
  return detail
}

export function nodeRow(n: NodeView): DashRow {
  // A revoked node's last heartbeat still speaks for it until it goes unreachable; its credential is gone.
  const status = n.revoked ? "revoked" : text(n.status)
  return {
    name: text(n.id),
    status,
    desired: short(n.desiredHash),
    current: short(n.currentHash),
    heartbeat: n.lastHeartbeat,
    drift: driftOf(n).join(", "),
    reboot: n.rebootRequired,
    detail: () => nodeDetail(n, status),
    // The node as `chimera nodes show --json` gives it, with the drift the row shows.
    data: { ...n, drift: driftOf(n) },
  }
}

export const READ_TIMEOUT_MS = 10_000

export function controlPlaneSource(intervalSeconds: number): RowSource {
  const { url, client } = apiClient()
  const read = async () => {
    const signal = AbortSignal.timeout(READ_TIMEOUT_MS)
    const { nodes } = (await call(url, client.api.nodes.$get({}, { init: { signal } })).catch((error) => {
      if (!signal.aborted) throw error
      throw new Error(`the control plane at ${url} did not answer within ${READ_TIMEOUT_MS / 1000} s`)
    })) as { nodes: NodeView[] }
    return nodes.map(nodeRow).sort((a, b) => a.name.localeCompare(b.name))
  }

  return {
    name: url,
    read,
    follow(update) {
      let stopped = false
      let pending: ReturnType<typeof setTimeout> | null = null
      // One read at a time: a read asked for while one runs happens once, after it.
      let reading = false
      let again = false
      const refresh = () => {
        if (reading) {
          again = true
          return
        }
        reading = true
        read()
          .then(
            (rows) => !stopped && update(rows, null),
            (error: Error) => !stopped && update(null, error.message),
          )
          .finally(() => {
            reading = false
            if (again && !stopped) {
              again = false
              refresh()
            }
          })
      }
      // A burst of events (a heal is three, a fleet-wide deploy thousands) becomes one read.
      const soon = () => {
        pending ??= setTimeout(() => {
          pending = null
          refresh()
        }, 200)
      }
      const poll = setInterval(refresh, intervalSeconds * 1000)
      const stream = new AbortController()
      void (async () => {
        while (!stopped) {
          try {
            await followEvents(stream.signal, soon)
          } catch {
            // The poll goes on; the stream is tried again below.
          }
          soon()
          if (!stopped) await Bun.sleep(2000)
        }
      })()
      refresh()
      return {
        stop() {
          stopped = true
          clearInterval(poll)
          if (pending) clearTimeout(pending)
          stream.abort()
        },
      }
    },
  }
}

/** Reads the event stream until it ends, calling `changed` for each event. */
async function followEvents(signal: AbortSignal, changed: () => void): Promise<void> {
  const res = await fetch(`${controlUrl()}/api/events/stream`, {
    headers: { authorization: `Bearer ${controlToken()}` },
    signal,
  })
  if (!res.ok || !res.body) throw new Error(`the event stream answered ${res.status}`)
  // Open again after a drop: what changed in between came as no event.
  changed()
  let buffer = ""
  for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
    buffer += chunk
    for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, i)
      buffer = buffer.slice(i + 2)
      if (/^id: /m.test(block)) changed()
      if (/^event: error$/m.test(block)) return
    }
  }
}
