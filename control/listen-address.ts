// The control plane's own address, as `chimera web` and the CLI on the same machine see it: a port
// another program holds, said as the person starting it can act on, and the URL the CLI uses to
// reach it. `chimera mcp`'s port is refused the same way.
import { StateError } from "./adapters/data-dir.ts"

/**
 * Runs `bind` (a Bun.serve, or a Bun.listen that tries the port): a port someone else holds becomes a
 * StateError saying what to do (`said`, the control plane's words by default), any other failure goes
 * on as it was.
 */
export function onOwnPort<S>(host: string, port: number, bind: () => S, said = portInUse): S {
  try {
    return bind()
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === "EADDRINUSE") throw new StateError(said(host, port))
    const at = _address(host, port)
    if (code === "EACCES")
      throw new StateError(`cannot listen at ${at}: a port below 1024 needs root; start with --port N above 1023`)
    // Bun says "Failed to listen at HOST" for a name or an address that is none of this machine's.
    if (code === "EADDRNOTAVAIL" || code === "EINVAL" || /^Failed to listen/.test((error as Error).message))
      throw new StateError(
        `cannot listen at ${at}: ${JSON.stringify(host)} is not an address of this machine; use one it has, such as 127.0.0.1, or 0.0.0.0 for all of them`,
      )
    throw error
  }
}

/** What to say when the control plane's address is taken. */
export function portInUse(host: string, port: number): string {
  return _taken(
    host,
    port,
    `(or [web] port in the config file), then point the CLI at it with CHIMERA_URL=${cliUrlFor(host, "N")}`,
  )
}

/** What to say when `chimera mcp`'s address is taken. */
export function mcpPortInUse(host: string, port: number): string {
  return _taken(
    host,
    port,
    `(or [mcp] port in the config file), then give MCP clients http://${_address(host, "N")}/mcp`,
  )
}

function _taken(host: string, port: number, then: string): string {
  return `${_address(host, port)} is already in use (\`ss -ltnp 'sport = :${port}'\` names the program); start with --port N ${then}`
}

/** host:port, an IPv6 address in brackets. */
const _address = (host: string, port: number | string) =>
  `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`

/**
 * The URL the CLI on this machine uses for a control plane listening on `host:port`: a wildcard
 * address (0.0.0.0, ::) is reached through loopback, the only plain-http address the CLI sends a
 * credential to.
 */
export function cliUrlFor(host: string, port: number | string): string {
  const bare = host.replace(/^\[|\]$/g, "")
  const reach = bare === "0.0.0.0" || bare === "" ? "127.0.0.1" : bare === "::" ? "::1" : bare
  return `http://${reach.includes(":") ? `[${reach}]` : reach}:${port}`
}
