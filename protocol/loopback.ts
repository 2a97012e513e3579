// Whether a host name is this machine's own: a loopback address (127.0.0.0/8, ::1) or localhost. A
// credential may cross plain http:// only to one of these (the CLI's transport rule, the endpoints of
// the config), and an MCP server on loopback answers to all of these names.

/** `hostname` as a URL gives it (IPv6 in brackets or not, any case). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase()
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}
