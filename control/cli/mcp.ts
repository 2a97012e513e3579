// `chimera mcp [--host localhost] [--port 8765] [--stdio]`: the MCP server `chimera-service`, a client
// of the control plane's API (CHIMERA_URL). Over HTTP each client sends its own credential; over stdio
// (for desktop clients that start it) it acts with the CLI's credential: CHIMERA_TOKEN, the
// `chimera login` session, or the local admin token.
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js"
import { defineCommand } from "citty"
import { setLogLevel } from "../../protocol/log.ts"
import { loadConfig } from "../config.ts"
import { mcpPortInUse, onOwnPort } from "../listen-address.ts"
import { apiCaller, errorText } from "../mcp/api-caller.ts"
import { serveMcpHttp } from "../mcp/http.ts"
import { guardMessages } from "../mcp/message-guard.ts"
import { createMcpServer, followEnrolments, type McpIdentity, servedTo } from "../mcp/server.ts"
import { screenedStdin } from "../mcp/stdio-screen.ts"
import { controlToken, controlUrl } from "./client.ts"
import { CliError } from "./errors.ts"
import { flagLogLevel } from "./globals.ts"
import { warn } from "./output.ts"
import { checkTransport } from "./transport.ts"

export default defineCommand({
  meta: { name: "mcp", description: "Serve MCP (chimera-service) for AI agents, over HTTP or stdio" },
  args: {
    host: { type: "string", description: "Address to listen on (default localhost)" },
    port: { type: "string", alias: "p", description: "Port (default 8765)" },
    stdio: { type: "boolean", description: "Serve on stdin/stdout (for desktop clients that start it)" },
  },
  async run({ args }) {
    const config = loadConfig({
      flags: { mcp: { host: args.host, port: args.port } },
      flagNames: { "mcp.host": "--host", "mcp.port": "--port" },
    })
    setLogLevel(flagLogLevel() ?? config.log_level)
    const url = controlUrl()
    // The MCP clients' tokens are passed on to the control plane: the CLI's transport rule holds for them.
    checkTransport(url)
    if (args.stdio) {
      const token = controlToken()
      const api = apiCaller(url, token)
      const me = await api({ method: "GET", path: "/api/auth/me" })
      if (me.status !== 200) throw new CliError(`the control plane at ${url} refused: ${errorText(me)}`, "E_API")
      const server = createMcpServer(api, me.body as McpIdentity)
      const stop = new AbortController()
      const input = screenedStdin(process.stdin, process.stdout)
      const transport = new StdioServerTransport(input)
      transport.onclose = () => {
        stop.abort()
        process.exit(0)
      }
      await server.connect(transport)
      guardMessages(transport, servedTo(me.body as McpIdentity))
      void followEnrolments(api, token, () => server.sendResourceListChanged(), stop.signal)
      // End of input ends the session once every request read has its answer: a piped client
      // (`… | chimera mcp --stdio`) gets them all, as the spec's shutdown by closing stdin expects.
      const answered = answersAwaited(transport)
      input.once("end", () => void answered().then(() => server.close()))
      return new Promise<void>(() => {})
    }
    const served = onOwnPort(
      config.mcp.host,
      config.mcp.port,
      () =>
        serveMcpHttp({
          host: config.mcp.host,
          port: config.mcp.port,
          controlUrl: url,
          allowedHosts: config.mcp.allowed_hosts,
        }),
      mcpPortInUse,
    )
    warn(`Chimera MCP server (chimera-service) on ${served.url}, for the control plane at ${url}\n`)
    const stop = async () => {
      await served.stop()
      process.exit(0)
    }
    process.once("SIGTERM", stop)
    process.once("SIGINT", stop)
    await new Promise(() => {})
  },
})

/** How long, after its input ended, the stdio server waits for answers still being worked out. */
const DRAIN_MS = 10 * 60_000

/** Counts the requests `transport` has read and not yet answered; the function waits for none. */
function answersAwaited(transport: StdioServerTransport): () => Promise<void> {
  const open = new Set<string | number>()
  let drained: (() => void) | null = null
  const received = transport.onmessage
  transport.onmessage = (message: JSONRPCMessage) => {
    if ("method" in message && "id" in message) open.add(message.id)
    received?.(message)
  }
  const send = transport.send.bind(transport)
  transport.send = async (message: JSONRPCMessage) => {
    await send(message)
    if (("result" in message || "error" in message) && "id" in message && message.id !== undefined) {
      open.delete(message.id)
      if (open.size === 0) drained?.()
    }
  }
  return () =>
    open.size === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          drained = resolve
          setTimeout(resolve, DRAIN_MS).unref()
        })
}
