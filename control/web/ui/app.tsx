// The app's frame: sign-in until there is a session; then the header (views, the live stream's state,
// who is signed in) over the current view. Signing in opens the event stream and loads the fleet;
// a session that ends (sign-out, a 401 anywhere, the stream refusing the credential) closes both.
import { Component, type ComponentChildren } from "preact"
import { useEffect, useMemo, useState } from "preact/hooks"
import { createApi } from "../client/api.ts"
import { openEventStream } from "../client/event-stream.ts"
import { createFleetStore, type FleetStore } from "../client/fleet-store.ts"
import { href, parseRoute, type Route } from "../client/router.ts"
import { createSession } from "../client/session.ts"
import { useSubscription } from "../client/use-store.ts"
import { DeploymentPage, DeploymentsPage } from "./deployments.tsx"
import { EventsPage } from "./event-feed.tsx"
import { NodePage } from "./node-page.tsx"
import { Overview } from "./overview.tsx"
import { SignIn } from "./sign-in.tsx"

export type Ctx = {
  api: ReturnType<typeof createApi>
  session: ReturnType<typeof createSession>
  fleet: FleetStore
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash))
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash))
    addEventListener("hashchange", on)
    // The hash may have changed between the first render and this effect (a link followed, or a
    // URL pasted, right after signing in); that change fired no event this listener heard.
    on()
    return () => removeEventListener("hashchange", on)
  }, [])
  return route
}

export function App() {
  const session = useMemo(createSession, [])
  const api = useMemo(() => createApi(session), [session])
  useSubscription(session)
  const signedIn = session.current()
  if (!signedIn) return <SignIn session={session} api={api} />
  // Not keyed on the token: a session's refresh (a new token) keeps the page as it is.
  return <Signed session={session} api={api} />
}

function Signed({ session, api }: Omit<Ctx, "fleet">) {
  // The fleet is read as the store is made, not after the first paint.
  const { fleet, started } = useMemo(() => {
    const store = createFleetStore(api, session.token())
    const started = store.start()
    // Its failure is shown by the store (or has ended the session); the stream starts from now then.
    started.catch(() => {})
    return { fleet: store, started }
  }, [api, session])
  const route = useRoute()
  useSubscription(fleet)

  useEffect(() => {
    // Back after a lost connection (an outage, a tab shown again): the stream replays the events it
    // missed, but heartbeats are not events, and a read that failed meanwhile still shows its error.
    let away = false
    const stream = openEventStream({
      token: session.token,
      start: () => started,
      onEvent: fleet.apply,
      onState: (state) => {
        fleet.setStreamState(state)
        if (state === "reconnecting") away = true
        else if (state === "live" && away) {
          away = false
          void fleet.refresh()
        }
      },
      onUnauthorized: (message) => session.end(`Your session ended: ${message.replace(/\.$/, "")}.`),
    })
    // A refreshed session: the stream moves to the new token (its old one expires under it), resuming
    // after its last event; the views stay as they are.
    let token = session.token()
    const renewed = session.subscribe(() => {
      const next = session.token()
      if (next === null || next === token) return
      token = next
      stream.reconnect()
    })
    // Heartbeats are not events: load, memory and "last heartbeat" come from a periodic read.
    const timer = setInterval(() => void fleet.refresh(), 15_000)
    return () => {
      renewed()
      stream.stop()
      clearInterval(timer)
      fleet.stop()
    }
  }, [fleet, started, session])

  const me = session.current()?.me
  // One object for the session's life: views' effects depend on it, and a new one on every render
  // (each fleet event, each refresh) made a node page read its events and incidents again each time.
  const ctx: Ctx = useMemo(() => ({ api, session, fleet }), [api, session, fleet])
  const state = fleet.streamState()
  const signOut = async () => {
    if (me?.via === "session") await api.post("/api/auth/revoke", {}).catch(() => {})
    session.end(null)
  }
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href.overview()}>
          Chimera
        </a>
        <nav aria-label="Views">
          <a
            href={href.overview()}
            aria-current={route.view === "overview" || route.view === "node" ? "page" : undefined}
          >
            Fleet
          </a>
          <a
            href={href.deployments()}
            aria-current={route.view === "deployments" || route.view === "deployment" ? "page" : undefined}
          >
            Deployments
          </a>
          <a href={href.events()} aria-current={route.view === "events" ? "page" : undefined}>
            Events
          </a>
        </nav>
        <span class={`live live-${state}`} role="status" data-testid="stream-state">
          {state === "live"
            ? "Live"
            : state === "stopped"
              ? "Offline"
              : state === "connecting"
                ? "Connecting…"
                : "Reconnecting…"}
        </span>
        <span class="who">
          {me?.name} <span class="role">{me?.role}</span>
        </span>
        <button type="button" class="quiet" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {fleet.loadError() && (
          <p class="banner error" role="alert">
            Could not load the fleet: {fleet.loadError()}
          </p>
        )}
        <Boundary key={JSON.stringify(route)}>
          {route.view === "overview" && <Overview ctx={ctx} />}
          {route.view === "node" && <NodePage ctx={ctx} id={route.id} />}
          {route.view === "deployments" && <DeploymentsPage ctx={ctx} />}
          {route.view === "deployment" && <DeploymentPage ctx={ctx} id={route.id} />}
          {route.view === "events" && <EventsPage ctx={ctx} />}
        </Boundary>
      </main>
    </div>
  )
}

/** A view that throws shows what went wrong instead of a blank page; the rest of the app stays. */
class Boundary extends Component<{ children: ComponentChildren }, { error: string | null }> {
  override state = { error: null as string | null }
  override componentDidCatch(error: unknown) {
    this.setState({ error: error instanceof Error ? error.message : String(error) })
  }
  override render() {
    if (this.state.error)
      return (
        <div class="banner error" role="alert">
          This view failed: {this.state.error}. <a href={href.overview()}>Back to the fleet</a>
        </div>
      )
    return this.props.children
  }
}
