// Views are addressed by the URL's fragment (#/nodes/web-1), so the control plane serves one page and
// a view can be bookmarked; the fragment never holds anything secret.

export type Route =
  | { view: "overview" }
  | { view: "node"; id: string }
  | { view: "deployments" }
  | { view: "deployment"; id: string }
  | { view: "events" }

export function parseRoute(hash: string): Route {
  const parts = hash
    .replace(/^#\/?/, "")
    .split("/")
    .map((p) => {
      try {
        return decodeURIComponent(p)
      } catch {
        return p
      }
    })
  if (parts[0] === "nodes" && parts[1]) return { view: "node", id: parts[1] }
  if (parts[0] === "deployments" && parts[1]) return { view: "deployment", id: parts[1] }
  if (parts[0] === "deployments") return { view: "deployments" }
  if (parts[0] === "events") return { view: "events" }
  return { view: "overview" }
}

export const href = {
  overview: () => "#/",
  node: (id: string) => `#/nodes/${encodeURIComponent(id)}`,
  deployments: () => "#/deployments",
  deployment: (id: string) => `#/deployments/${encodeURIComponent(id)}`,
  events: () => "#/events",
}
