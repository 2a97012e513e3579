// The SSH connections a target needs, in order: its ProxyJump hosts (first hop first), then the target
// itself, each with the route ~/.ssh/config gives it (ssh-config.ts). As with `ssh -J a,b`, the first
// hop is reached the way ssh would reach it (through its own ProxyJump, if it has one) and each later
// hop through the one before. A ProxyCommand is refused with the host and the option named: Chimera's
// connections cannot run one, and dialling the host directly instead would take another route than
// ssh and the closure copy.
import type { Target } from "../../domain/operation-ports.ts"
import { SshFailure } from "./failure.ts"
import { type RouteRequest, routeRequest, type SshRoute } from "./ssh-config.ts"

export interface Hop {
  route: SshRoute
  /** How this connection is named in messages: the target's name, and the destination actually dialled. */
  shown: Target
}

const MAX_DEPTH = 8

const _shown = (name: string, r: SshRoute): Target => ({ name, user: r.user, host: r.host, port: r.port })

export async function planHops(t: Target, resolve: (req: RouteRequest) => Promise<SshRoute>): Promise<Hop[]> {
  const jumps = async (route: SshRoute, depth: number): Promise<Hop[]> => {
    if (route.proxyJump.length === 0) {
      if (route.proxyCommand)
        throw new SshFailure({
          kind: "error",
          message: `${t.name}: the SSH configuration gives ${route.alias} a ProxyCommand (${route.proxyCommand}), which Chimera's SSH connections cannot run; use ProxyJump for that host instead, or name an address Chimera can reach directly`,
        })
      return []
    }
    if (depth >= MAX_DEPTH)
      throw new SshFailure({
        kind: "error",
        message: `${t.name}: more than ${MAX_DEPTH} ProxyJump hops in the SSH configuration (a loop at ${route.alias}?)`,
      })
    const routes = await Promise.all(route.proxyJump.map(resolve))
    const before = await jumps(routes[0] as SshRoute, depth + 1)
    return [...before, ...routes.map((r) => ({ route: r, shown: _shown(`${t.name} (jump host ${r.alias})`, r) }))]
  }
  const route = await resolve(routeRequest(t))
  return [...(await jumps(route, 0)), { route, shown: _shown(t.name, route) }]
}
