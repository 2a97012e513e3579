// Malformed requests get the JSON-RPC answer the specification gives them: -32602 "Invalid params"
// with a sentence that names the field, instead of the SDK's -32603 "Internal error" carrying a dump
// of its schema check. Sits between the transport and the server, so stdio and HTTP are both covered.
// A message the transports refuse before that (`params: []`, an object id, `"jsonrpc": "1.0"`) is
// answered by `refusalOf`, which stdio-screen.ts and http.ts both use.
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import { ErrorCode, type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js"

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
  if (PAGED.has(method) && params.cursor !== undefined && typeof params.cursor !== "string")
    return `${method}: params.cursor must be a cursor from an earlier page (a string), got ${kind(params.cursor)}`
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

/** Call after `server.connect(transport)`: wraps the handler the server installed. */
export function guardMessages(transport: Transport): void {
  const deliver = transport.onmessage
  if (!deliver) throw new Error("guardMessages: connect the server to the transport first")
  transport.onmessage = (message, extra) => {
    const m = message as { id?: string | number; method?: unknown; params?: unknown }
    if (m.id !== undefined && typeof m.method === "string") {
      const problem = paramsProblem(m.method, m.params)
      if (problem) {
        const answer = {
          jsonrpc: "2.0",
          id: m.id,
          error: { code: ErrorCode.InvalidParams, message: problem },
        } as JSONRPCMessage
        void transport.send(answer, { relatedRequestId: m.id }).catch(() => {})
        return
      }
    }
    deliver(message, extra)
  }
}
