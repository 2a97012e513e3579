// Recorded deploys and heals (`chimera deploy`, `chimera watch`): a list, newest first, and one in
// full with each target's status, phases and their timings, error and log. Deploys are recorded by
// the CLI, not announced as events; the list reads again when a desired closure changes (a deploy
// publishes one per confirmed target; once after a burst of them) and every 15 s while it is shown.
import { useEffect, useState } from "preact/hooks"
import { seg } from "../client/api.ts"
import { ms, short, when } from "../client/format.ts"
import { href } from "../client/router.ts"
import type { Deployment, UnfinishedDeployment } from "../client/types.ts"
import type { Ctx } from "./app.tsx"
import { StatusBadge } from "./status.tsx"

/** After a desired closure changes, the list is read this long after the last such event. */
const SETTLE_MS = 500

function useReload(ctx: Ctx, read: () => void) {
  useEffect(() => {
    read()
    const t = setInterval(read, 15_000)
    let soon: ReturnType<typeof setTimeout> | undefined
    // A deploy to many nodes changes their desired closures one event each: one read after the last.
    const off = ctx.fleet.onEvent((e) => {
      if (e.type !== "desired.changed") return
      clearTimeout(soon)
      soon = setTimeout(read, SETTLE_MS)
    })
    return () => {
      clearInterval(t)
      clearTimeout(soon)
      off()
    }
  }, [ctx])
}

const duration = (d: Deployment) => ms(Date.parse(d.finishedAt) - Date.parse(d.createdAt))

export function DeploymentsPage({ ctx }: { ctx: Ctx }) {
  const [list, setList] = useState<Deployment[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  useReload(ctx, () =>
    ctx.api.get<{ deployments: Deployment[] }>("/api/deployments?limit=100").then(
      (r) => {
        setList(r.deployments)
        setError(null)
      },
      (e: Error) => setError(e.message),
    ),
  )
  return (
    <section aria-labelledby="deployments-title">
      <h1 id="deployments-title">Deployments and heals</h1>
      {error && (
        <p class="banner error" role="alert">
          {error}
        </p>
      )}
      {list === null ? (
        <p class="empty">Loading…</p>
      ) : list.length === 0 ? (
        <p class="empty">Nothing deployed yet. `chimera deploy` records each run here.</p>
      ) : (
        <div class="table-scroll">
          <table class="grid" data-testid="deployments">
            <thead>
              <tr>
                <th scope="col">Deployment</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Targets</th>
                <th scope="col">Closure</th>
                <th scope="col">Started</th>
                <th scope="col">Took</th>
              </tr>
            </thead>
            <tbody>
              {list.map((d) => (
                <tr key={d.id}>
                  <td class="name">
                    <a href={href.deployment(d.id)}>{d.id}</a>
                  </td>
                  <td>{d.kind}</td>
                  <td>
                    <StatusBadge status={d.status} />
                  </td>
                  <td>
                    {d.targets.length} (
                    {d.targets.filter((t) => t.status === "deployed" || t.status === "up-to-date").length} ok)
                  </td>
                  <td class="mono">{short(d.hash)}</td>
                  <td class="nowrap">{when(d.createdAt)}</td>
                  <td class="nowrap">{duration(d)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

/** A deploy's breadcrumb and heading: what it is, its status, and a line of facts. */
function DeploymentHead({ id, title, status, meta }: { id: string; title: string; status: string; meta: string }) {
  return (
    <>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href.deployments()}>Deployments</a> / <span>{id}</span>
      </nav>
      <header class="node-head">
        <h1 id="deployment-title">{title}</h1>
        <StatusBadge status={status} />
        <span class="meta">{meta}</span>
      </header>
    </>
  )
}

/** A deploy still running (its targets' progress so far), or interrupted: its control plane stopped first. */
function Unfinished({ d }: { d: UnfinishedDeployment }) {
  return (
    <article aria-labelledby="deployment-title">
      <DeploymentHead
        id={d.id}
        title={`deploy ${d.id}`}
        status={d.status}
        meta={`started ${when(d.createdAt)} · ${d.targets.length} targets`}
      />
      {d.reason && (
        <p class="banner error" role="status">
          {d.reason}
        </p>
      )}
      {d.targets.map((t) => (
        <section key={t} class="target" aria-label={`Target ${t}`}>
          <h2>
            <a href={href.node(t)}>{t}</a> <span class="meta">{d.progress[t] ?? "waiting"}</span>
          </h2>
        </section>
      ))}
    </article>
  )
}

const unfinished = (d: Deployment | UnfinishedDeployment): d is UnfinishedDeployment =>
  d.status === "running" || d.status === "interrupted"

export function DeploymentPage({ ctx, id }: { ctx: Ctx; id: string }) {
  const [d, setD] = useState<Deployment | UnfinishedDeployment | null>(null)
  const [error, setError] = useState<string | null>(null)
  useReload(ctx, () =>
    ctx.api
      .get<Deployment | UnfinishedDeployment>(`/api/deployments/${seg(id)}`)
      .then(setD, (e: Error) => setError(e.message)),
  )
  if (error)
    return (
      <p class="banner error" role="alert">
        {error}. <a href={href.deployments()}>All deployments</a>
      </p>
    )
  if (!d) return <p class="empty">Loading…</p>
  if (unfinished(d)) return <Unfinished d={d} />
  return (
    <article aria-labelledby="deployment-title">
      <DeploymentHead
        id={d.id}
        title={`${d.kind} ${d.id}`}
        status={d.status}
        meta={`${when(d.createdAt)} · took ${duration(d)} · ${d.targets.length} targets`}
      />
      <table class="kv">
        <tbody>
          <tr>
            <th scope="row">closure</th>
            <td class="mono path">{d.closure}</td>
          </tr>
          <tr>
            <th scope="row">configuration</th>
            <td class="mono">{d.configPath}</td>
          </tr>
          {d.command && (
            <tr>
              <th scope="row">command</th>
              <td class="mono">{d.command}</td>
            </tr>
          )}
        </tbody>
      </table>
      {d.targets.map((t) => (
        <section key={t.target} class="target" aria-label={`Target ${t.target}`}>
          <h2>
            <a href={href.node(t.target)}>{t.target}</a> <StatusBadge status={t.status} />{" "}
            <span class="meta">{ms(t.ms)}</span>
          </h2>
          {t.error && (
            <p class="banner error" role="status">
              {t.error}
            </p>
          )}
          {t.timings && t.timings.length > 0 && (
            <ol class="phases" aria-label="Phases">
              {t.timings.map((p) => (
                <li key={p.phase + p.startedAt}>
                  <span class="phase">{p.phase}</span> <span class="meta">{ms(p.ms)}</span>
                </li>
              ))}
            </ol>
          )}
          {t.log && t.log.length > 0 && <pre class="output log">{t.log.join("\n")}</pre>}
        </section>
      ))}
    </article>
  )
}
