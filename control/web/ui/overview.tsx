// The fleet at a glance: counts by status (each a filter), then every node, trouble first, filtered
// by status, tag and name. The list renders only the rows in view, so 1,000 nodes or 20,000 scroll
// as smoothly as ten.
import { useEffect, useMemo, useState } from "preact/hooks"
import { ago, short } from "../client/format.ts"
import { href } from "../client/router.ts"
import { type NodeStatus, type NodeView, STATUSES } from "../client/types.ts"
import { useTicker } from "../client/use-store.ts"
import type { Ctx } from "./app.tsx"
import { EventRows } from "./event-feed.tsx"
import { STATUS_RANK, StatusBadge } from "./status.tsx"
import { VirtualRows } from "./virtual-rows.tsx"

export function Overview({ ctx }: { ctx: Ctx }) {
  const { fleet, api } = ctx
  const [status, setStatus] = useState<NodeStatus | "">("")
  const [tag, setTag] = useState("")
  const [search, setSearch] = useState("")
  const [tags, setTags] = useState<Record<string, string[]>>({})
  useTicker(5000)

  useEffect(() => {
    api.get<{ tags: Record<string, string[]> }>("/api/fleet/tags").then(
      (r) => setTags(r.tags),
      () => {},
    )
  }, [api])

  const all = fleet.nodes()
  const version = fleet.version()
  const counts = useMemo(() => {
    const c = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<NodeStatus, number>
    for (const n of all) c[n.status] = (c[n.status] ?? 0) + 1
    return c
  }, [version])
  const allTags = useMemo(() => [...new Set(Object.values(tags).flat())].sort(), [tags])

  const rows = useMemo(() => {
    const q = search.trim().toLowerCase()
    return all
      .filter(
        (n) =>
          (status === "" || n.status === status) &&
          (tag === "" || (tags[n.id] ?? []).includes(tag)) &&
          (q === "" || n.id.toLowerCase().includes(q) || n.hostname.toLowerCase().includes(q)),
      )
      .sort((a, b) => STATUS_RANK[a.status] - STATUS_RANK[b.status] || a.id.localeCompare(b.id))
  }, [version, status, tag, search, tags])

  return (
    <section aria-labelledby="fleet-title">
      <h1 id="fleet-title" class="visually-hidden">
        Fleet
      </h1>
      <ul class="counts" aria-label="Nodes by status">
        <li>
          <button type="button" class={status === "" ? "count active" : "count"} onClick={() => setStatus("")}>
            <span class="n" data-testid="count-all">
              {all.length}
            </span>
            <span class="label">all nodes</span>
          </button>
        </li>
        {STATUSES.map((s) => (
          <li key={s}>
            <button
              type="button"
              class={`count c-${s}${status === s ? " active" : ""}${counts[s] === 0 ? " zero" : ""}`}
              aria-pressed={status === s}
              onClick={() => setStatus(status === s ? "" : s)}
            >
              <span class="n" data-testid={`count-${s}`}>
                {counts[s]}
              </span>
              <span class="label">{s}</span>
            </button>
          </li>
        ))}
      </ul>
      <div class="filters">
        <label>
          <span>Status</span>
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value as NodeStatus | "")}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Tag</span>
          <select value={tag} onChange={(e) => setTag(e.currentTarget.value)} disabled={allTags.length === 0}>
            <option value="">{allTags.length === 0 ? "no tags configured" : "any"}</option>
            {allTags.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label class="grow">
          <span>Search</span>
          <input
            type="search"
            placeholder="node name or hostname"
            value={search}
            onInput={(e) => setSearch(e.currentTarget.value)}
          />
        </label>
        <span class="shown" role="status">
          {rows.length} of {all.length} shown
        </span>
      </div>
      <div class="overview-body">
        {!fleet.loaded() ? (
          <p class="empty">Loading the fleet…</p>
        ) : all.length === 0 ? (
          <p class="empty">No nodes are enrolled yet. Create a join token with `chimera nodes join-token`.</p>
        ) : (
          <NodeTable rows={rows} tags={tags} />
        )}
        <aside class="latest" aria-labelledby="latest-title">
          <h2 id="latest-title">
            Latest events <a href={href.events()}>all</a>
          </h2>
          {fleet.feed().length === 0 ? (
            <p class="empty">Events appear here as they happen.</p>
          ) : (
            <table class="grid compact" data-testid="latest-events">
              <EventRows events={fleet.feed().slice(0, 12)} compact />
            </table>
          )}
        </aside>
      </div>
    </section>
  )
}

const COLUMNS = ["Node", "Status", "Desired", "Profile", "Current", "Heartbeat", "Load", "Tags"]

function NodeTable({ rows, tags }: { rows: NodeView[]; tags: Record<string, string[]> }) {
  return (
    <VirtualRows
      label="Nodes"
      columns={COLUMNS}
      count={rows.length}
      rowKey={(i) => rows[i]?.id ?? String(i)}
      renderRow={(i) => {
        const n = rows[i]
        if (!n) return null
        const differs = (hash: string | null) => n.desiredHash !== null && hash !== n.desiredHash
        return (
          <>
            <td class="name">
              <a href={href.node(n.id)} title={n.id}>
                {n.id}
              </a>
              {n.rebootRequired && <span class="tag warn">reboot</span>}
            </td>
            <td>
              <StatusBadge status={n.revoked ? "revoked" : n.status} />
            </td>
            <td class="mono">{short(n.desiredHash)}</td>
            <td class={differs(n.profileHash) ? "col-profile mono differs" : "col-profile mono"}>
              {short(n.profileHash)}
            </td>
            <td class={differs(n.currentHash) ? "col-current mono differs" : "col-current mono"}>
              {short(n.currentHash)}
            </td>
            <td class="col-heartbeat">{ago(n.lastHeartbeat)}</td>
            <td class="col-load mono">{n.health ? n.health.load[0].toFixed(2) : "—"}</td>
            <td class="col-tags">{(tags[n.id] ?? []).join(", ")}</td>
          </>
        )
      }}
    />
  )
}
