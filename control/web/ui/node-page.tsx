// One node: its four closures and their hashes, whether it needs a reboot, its health now and over
// the last minutes, its drift and heal history, the commands it was sent (for roles that may run
// them), and the actions the signed-in role may take. Its events arrive live from the stream.
import { useEffect, useState } from "preact/hooks"
import { seg } from "../client/api.ts"
import { ago, bytes, eventSummary, when } from "../client/format.ts"
import { href } from "../client/router.ts"
import type { FleetEvent, NodeCommand } from "../client/types.ts"
import { useTicker } from "../client/use-store.ts"
import type { Ctx } from "./app.tsx"
import { HealthChart } from "./health-chart.tsx"
import { NodeActions } from "./node-actions.tsx"
import { NodeIncidents } from "./node-incidents.tsx"
import { StatusBadge } from "./status.tsx"

/** The node page shows this many of a node's latest events. */
const SHOWN = 200

/** The node's latest events, newest first. */
async function nodeEvents(ctx: Ctx, id: string): Promise<FleetEvent[]> {
  const { events } = await ctx.api.get<{ events: FleetEvent[] }>(`/api/events?node=${seg(id)}&tail=true&limit=${SHOWN}`)
  return events.reverse()
}

export function NodePage({ ctx, id }: { ctx: Ctx; id: string }) {
  const { fleet, api, session } = ctx
  const node = fleet.node(id)
  const [events, setEvents] = useState<FleetEvent[] | null>(null)
  const [commands, setCommands] = useState<NodeCommand[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const canSeeCommands = session.can("commands:run")
  useTicker(1000)

  const [commandsRead, setCommandsRead] = useState(0)

  useEffect(() => {
    let live = true
    nodeEvents(ctx, id).then(
      (es) => live && setEvents(es),
      (e: Error) => live && setError(e.message),
    )
    const off = fleet.onEvent((e) => {
      if (e.nodeId !== id) return
      setEvents((es) => (es ? [e, ...es.filter((x) => x.id !== e.id)] : es))
      if (e.type === "command.acked" || e.type === "desired.changed") setCommandsRead((n) => n + 1)
    })
    return () => {
      live = false
      off()
    }
  }, [id, ctx, fleet])

  useEffect(() => {
    if (!canSeeCommands) return
    let live = true
    api.get<{ commands: NodeCommand[] }>(`/api/nodes/${seg(id)}/commands?limit=20`).then(
      (r) => live && setCommands(r.commands),
      () => {},
    )
    return () => {
      live = false
    }
  }, [id, api, canSeeCommands, commandsRead])

  if (!node)
    return fleet.loaded() ? (
      <p class="banner error" role="alert">
        No node {JSON.stringify(id)} is enrolled. <a href={href.overview()}>Back to the fleet</a>
      </p>
    ) : (
      <p class="empty">Loading…</p>
    )

  const h = node.health
  const closures: [string, string | null, string | null][] = [
    ["desired", node.desiredHash, node.desiredPath],
    ["profile", node.profileHash, node.profilePath],
    ["current", node.currentHash, node.currentPath],
    ["booted", node.bootedHash, node.bootedPath],
  ]
  return (
    <article class="node" aria-labelledby="node-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href.overview()}>Fleet</a> / <span>{node.id}</span>
      </nav>
      <header class="node-head">
        <h1 id="node-title">{node.id}</h1>
        <span data-testid="node-status">
          <StatusBadge status={node.revoked ? "revoked" : node.status} />
        </span>
        {node.rebootRequired && <span class="tag warn">reboot required</span>}
        <span class="meta">
          {node.hostname && <>host {node.hostname} · </>}agent {node.agentVersion ?? "?"} · heartbeat{" "}
          {ago(node.lastHeartbeat)} (every {node.heartbeatIntervalSeconds}s) · agent phase {node.phase ?? "—"}
          {node.status === "unreachable" && node.phase ? " (last reported)" : ""}
        </span>
      </header>

      <div class="two">
        <section aria-labelledby="closures-title">
          <h2 id="closures-title">Closures</h2>
          <table class="kv">
            <tbody>
              {closures.map(([name, hash, path]) => (
                <tr key={name}>
                  <th scope="row">{name}</th>
                  <td>
                    <span
                      class={
                        name !== "desired" && name !== "booted" && hash !== node.desiredHash ? "mono differs" : "mono"
                      }
                      data-testid={`hash-${name}`}
                    >
                      {hash ?? "—"}
                    </span>
                    {path && <div class="path mono">{path}</div>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="hint">Generations are read from the node over SSH: `chimera generations --targets {node.id}`.</p>
        </section>
        <section aria-labelledby="health-title">
          <h2 id="health-title">Health</h2>
          {h && node.status === "unreachable" && (
            <p class="hint" data-testid="health-stale">
              As last reported, {ago(node.lastHeartbeat)}: the node has not been heard from since.
            </p>
          )}
          {h ? (
            <table class="kv">
              <tbody>
                <tr>
                  <th scope="row">load</th>
                  <td class="mono">{h.load.map((l) => l.toFixed(2)).join(" ")}</td>
                </tr>
                <tr>
                  <th scope="row">memory</th>
                  <td>
                    {bytes(h.memory.availableBytes)} free of {bytes(h.memory.totalBytes)}
                  </td>
                </tr>
                <tr>
                  <th scope="row">disk</th>
                  <td>
                    {bytes(h.disk.freeBytes)} free of {bytes(h.disk.totalBytes)} on{" "}
                    <span class="mono">{h.disk.path}</span>
                  </td>
                </tr>
              </tbody>
            </table>
          ) : (
            <p class="empty">No heartbeat yet.</p>
          )}
          <HealthChart ctx={ctx} id={node.id} />
        </section>
      </div>

      <NodeActions ctx={ctx} node={node} onCommandRun={() => setCommandsRead((n) => n + 1)} />

      <NodeIncidents ctx={ctx} id={node.id} />

      <section aria-labelledby="history-title">
        <h2 id="history-title">Drift and heal history</h2>
        {error && (
          <p class="banner error" role="alert">
            {error}
          </p>
        )}
        {events === null ? (
          <p class="empty">Loading events…</p>
        ) : events.length === 0 ? (
          <p class="empty">No events for this node.</p>
        ) : (
          <div class="table-scroll">
            <table class="grid" data-testid="node-events">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Event</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {events.slice(0, SHOWN).map((e) => (
                  <tr key={e.id}>
                    <td class="nowrap">{when(e.at)}</td>
                    <td>
                      <span class={`ev ev-${e.type.replace(".", "-")}`}>{e.type}</span>
                    </td>
                    <td class="detail">{eventSummary(e)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {canSeeCommands && (
        <section aria-labelledby="commands-title">
          <h2 id="commands-title">Recent commands</h2>
          {commands === null ? (
            <p class="empty">Loading…</p>
          ) : commands.length === 0 ? (
            <p class="empty">No commands were sent to this node.</p>
          ) : (
            <ul class="commands" data-testid="node-commands">
              {commands.map((c) => (
                <li key={c.id}>
                  <div class="cmd-head">
                    <span class="tag">{c.kind}</span>
                    <code class="mono">{c.summary}</code>
                    <span class={c.success === null ? "muted" : c.success ? "ok" : "bad"}>
                      {c.ackedAt === null
                        ? c.cancelled
                          ? "cancelling"
                          : "pending"
                        : c.success
                          ? "ok"
                          : c.cancelled && !c.timedOut && c.exitCode === null
                            ? "cancelled"
                            : c.timedOut
                              ? "timed out"
                              : `failed${c.exitCode !== null ? ` (exit ${c.exitCode})` : ""}`}
                    </span>
                    <span class="muted">{when(c.createdAt)}</span>
                  </div>
                  {(c.output || c.stderr) && (
                    <pre class="output">
                      {c.output}
                      {c.stderr && <span class="stderr">{c.stderr}</span>}
                      {c.truncated && "\n[output cut]"}
                    </pre>
                  )}
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
    </article>
  )
}
