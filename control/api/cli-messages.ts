// The WebSocket protocol of a CLI session, as zod schemas: what a client may send (command,
// cancel, status, ping) and what the server answers (output, status, error, completion, pong, each
// with its own id, the client message it answers as correlationId, and a timestamp). `readClientFrame`
// turns a raw frame into a message or the protocol's error code for it, so the socket never throws.
import { z } from "zod"
import { issuesOf } from "./validate.ts"

/** Above this a frame is refused with INVALID_MESSAGE (Bun closes the socket, 1009, above 1 MiB). */
export const MAX_FRAME_CHARS = 64 * 1024
/** A command may run this long over the WebSocket unless its options ask for less. */
export const MAX_COMMAND_TIMEOUT_MS = 3_600_000

const MessageId = z.string().min(1).max(128)
const Empty = z.object({}).strict()

export const CommandMessage = z
  .object({
    type: z.literal("command"),
    id: MessageId,
    data: z
      .object({
        command: z.string().min(1).max(60_000),
        options: z
          .object({
            timeout: z.number().int().min(1).max(MAX_COMMAND_TIMEOUT_MS).optional(),
            format: z.enum(["text", "json", "markdown"]).optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
  })
  .strict()

export const ClientMessage = z.discriminatedUnion("type", [
  CommandMessage,
  z.object({ type: z.literal("cancel"), id: MessageId, data: Empty.default({}) }).strict(),
  z.object({ type: z.literal("status"), id: MessageId, data: Empty.default({}) }).strict(),
  z
    .object({
      type: z.literal("ping"),
      id: MessageId,
      data: z.object({ timestamp: z.iso.datetime().optional() }).strict().default({}),
    })
    .strict(),
])
export type ClientMessage = z.infer<typeof ClientMessage>

const CLIENT_TYPES = new Set(["command", "cancel", "status", "ping"])

export type WsErrorCode =
  | "INVALID_MESSAGE"
  | "UNKNOWN_MESSAGE_TYPE"
  | "SESSION_NOT_FOUND"
  | "SESSION_EXPIRED"
  | "PROCESS_DEAD"
  | "PROCESS_TIMEOUT"
  | "RATE_LIMIT"
  | "AUTHENTICATION_FAILED"
  | "PERMISSION_DENIED"
  | "PROVIDER_UNAVAILABLE"
  | "RESOURCE_EXHAUSTED"
  | "AUDIT_UNAVAILABLE"

export interface FrameError {
  code: WsErrorCode
  message: string
  correlationId: string | null
  details?: unknown
}

/** A client frame parsed, or the error to answer it with. */
export function readClientFrame(raw: string | ArrayBuffer | Blob | unknown): ClientMessage | FrameError {
  const invalid = (message: string, correlationId: string | null = null, details?: unknown): FrameError => ({
    code: "INVALID_MESSAGE",
    message,
    correlationId,
    ...(details === undefined ? {} : { details }),
  })
  if (typeof raw !== "string") return invalid("binary frames are not accepted; send a JSON text frame")
  if (raw.length > MAX_FRAME_CHARS)
    return invalid(`the frame is ${raw.length} characters; at most ${MAX_FRAME_CHARS} are accepted`)
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch (error) {
    return invalid(`the frame is not valid JSON: ${(error as Error).message.slice(0, 200)}`)
  }
  if (json === null || typeof json !== "object" || Array.isArray(json))
    return invalid('expected a JSON object like {"type": "ping", "id": "p1", "data": {}}')
  const { type, id } = json as { type?: unknown; id?: unknown }
  const correlationId = typeof id === "string" && id.length <= 128 ? id : null
  if (typeof type !== "string") return invalid("the message has no string `type`", correlationId)
  if (!CLIENT_TYPES.has(type))
    return {
      code: "UNKNOWN_MESSAGE_TYPE",
      message: `unknown message type ${JSON.stringify(type.slice(0, 64))}; expected command, cancel, status or ping`,
      correlationId,
    }
  const parsed = ClientMessage.safeParse(json)
  if (parsed.success) return parsed.data
  const issues = issuesOf(parsed.error)
  const first = issues[0]
  return invalid(`${type} message: ${first ? `${first.path}: ${first.message}` : "invalid"}`, correlationId, {
    issues,
  })
}

export const isFrameError = (m: ClientMessage | FrameError): m is FrameError => "code" in m
