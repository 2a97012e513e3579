// Malformed requests get the JSON-RPC answer the specification gives them: -32602 "Invalid params"
// with a sentence that names the field, instead of the SDK's -32603 "Internal error" carrying a dump
// of its schema check. Sits between the transport and the server, so stdio and HTTP are both covered.
// A message the transports refuse before that (`params: []`, an object id, `"jsonrpc": "1.0"`) is
// answered by `refusalOf`, which stdio-screen.ts and http.ts both use.
// On the way out, the SDK's own errors are said as the specification says them: a tool this server
// does not offer the caller is a JSON-RPC error (-32602) naming the ones it does, not a tool result;
// a resource read of a URI that names none is -32002 "Resource not found", not -32602; and no
// message starts "MCP error -32602: ", which the SDK's McpError writes into it and a client's McpError
// writes again, so the person read "MCP error -32602: MCP error -32602: Resource … not found".
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import {
  ErrorCode,
  isJSONRPCErrorResponse,
  type JSONRPCMessage,
  JSONRPCMessageSchema,
} from "@modelcontextprotocol/sdk/types.js"

const kind = (v: unknown) =>
  v === null ? "null" : v === undefined ? "nothing" : Array.isArray(v) ? "an array" : `a ${typeof v}`
/** RFC 5424's levels, as logging/setLevel takes them. */
const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
const PAGED = new Set(["tools/list", "resources/list", "resources/templates/list", "prompts/list"])
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** What is wrong with a request's params, or null. */
export function paramsProblem(method: string, params: unknown): string | null {
  if (params === undefined)
    return method === "tools/call" || method === "resources/read" ? `${method}: params are required` : null
  if (!isObject(params)) return `${method}: params must be an object, got ${kind(params)}`
  if (method === "tools/call") {
    if (typeof params.name !== "string")
      return `tools/call: params.name must be the tool's name (a string), got ${kind(params.name)}`
    if (params.arguments !== undefined && !isObject(params.arguments))
      return `tools/call: params.arguments must be an object of the tool's arguments, got ${kind(params.arguments)}`
  }
  if (method === "resources/read" && typeof params.uri !== "string")
    return `resources/read: params.uri must be a resource URI (a string), got ${kind(params.uri)}`
  if (method === "resources/read" && typeof params.uri === "string" && !URL.canParse(params.uri))
    return `resources/read: params.uri must be a resource URI such as node://health, got ${JSON.stringify(params.uri.slice(0, 200))}`
  if (method === "logging/setLevel" && !LOG_LEVELS.includes(params.level as string))
    return `logging/setLevel: params.level must be one of ${LOG_LEVELS.join(", ")}, got ${typeof params.level === "string" ? JSON.stringify(params.level.slice(0, 64)) : kind(params.level)}`
  // No list here has a second page (none answers a nextCursor), so no cursor names one.
  if (PAGED.has(method) && params.cursor !== undefined)
    return `${method}: params.cursor names no page: this server's lists come whole, in one page without a nextCursor`
  return null
}

export interface Refusal {
  id: string | number | null
  code: number
  message: string
}

/**
 * The JSON-RPC error for a parsed value that is not a JSON-RPC message, or null for one that is:
 * -32602 naming the field for a request whose params are wrong, else -32600, with the request's id
 * where it has a usable one (the SDK's transports answer -32700 "Parse error" with none, or nothing).
 */
export function refusalOf(value: unknown): Refusal | null {
  if (JSONRPCMessageSchema.safeParse(value).success) return null
  const m = isObject(value) ? value : {}
  const id = typeof m.id === "string" || (typeof m.id === "number" && Number.isFinite(m.id)) ? m.id : null
  const problem = typeof m.method === "string" ? paramsProblem(m.method, m.params) : null
  if (problem && id !== null) return { id, code: ErrorCode.InvalidParams, message: problem }
  return {
    id,
    code: ErrorCode.InvalidRequest,
    message:
      'Invalid Request: expected a JSON-RPC 2.0 message ("jsonrpc": "2.0", a method, and an id that is a string or a number)',
  }
}

/** MCP's code for a resource that does not exist (the specification's "Resource not found"). */
export const RESOURCE_NOT_FOUND = -32002
/** What the SDK's McpError puts before its message; a client's McpError puts it there again. */
const SDK_PREFIX = /^MCP error -?\d+: /
/** The SDK's answer to a resources/read whose URI matches no resource or template. */
const SDK_NO_RESOURCE = /^Resource .* not found$/s

/** What this server serves the session's caller, for the errors that name it. */
export interface Served {
  /** The tools the caller's role may call (those tools/list gives it). */
  tools: string[]
  role: string
  /** The resources and templates, as their URIs read (node://health, node://{id}, …). */
  resources: string[]
}

const list = (names: string[]) => (names.length === 0 ? "none" : names.join(", "))

/** Call after `server.connect(transport)`: wraps the handler the server installed and its sends. */
export function guardMessages(transport: Transport, served: Served): void {
  const deliver = transport.onmessage
  if (!deliver) throw new Error("guardMessages: connect the server to the transport first")
  const refuse = (id: string | number, code: number, message: string) =>
    void transport
      .send({ jsonrpc: "2.0", id, error: { code, message } } as JSONRPCMessage, { relatedRequestId: id })
      .catch(() => {})
  /** The URIs of resources/read requests not answered yet, by request id. */
  const reads = new Map<string | number, string>()
  transport.onmessage = (message, extra) => {
    const m = message as { id?: string | number; method?: unknown; params?: Record<string, unknown> }
    if (m.id !== undefined && typeof m.method === "string") {
      const problem = paramsProblem(m.method, m.params)
      if (problem) return refuse(m.id, ErrorCode.InvalidParams, problem)
      const tool = m.method === "tools/call" ? String(m.params?.name) : null
      if (tool !== null && !served.tools.includes(tool))
        return refuse(
          m.id,
          ErrorCode.InvalidParams,
          `Unknown tool: ${JSON.stringify(tool.slice(0, 200))} is not a tool of this server for role ${served.role}; its tools are ${list(served.tools)}`,
        )
      if (m.method === "resources/read") reads.set(m.id, String(m.params?.uri))
    }
    // A cancelled request gets no answer (the specification), so its URI is not kept for one.
    if (m.method === "notifications/cancelled") reads.delete(m.params?.requestId as string | number)
    deliver(message, extra)
  }
  const send = transport.send.bind(transport)
  transport.send = (message, options) => {
    if (!("id" in message) || message.id === undefined || !("result" in message || "error" in message))
      return send(message, options)
    const uri = reads.get(message.id)
    reads.delete(message.id)
    if (!isJSONRPCErrorResponse(message)) return send(message, options)
    let { code, message: text } = message.error
    text = text.replace(SDK_PREFIX, "")
    if (uri !== undefined && code === ErrorCode.InvalidParams && SDK_NO_RESOURCE.test(text)) {
      code = RESOURCE_NOT_FOUND
      text = `Resource not found: ${uri.slice(0, 200)} names no resource of this server; it serves ${list(served.resources)}`
    }
    return send({ ...message, error: { ...message.error, code, message: text } }, options)
  }
}
