// Domain errors: small coded classes. The API maps each code to an HTTP status in one onError;
// the CLI prints the message in one place and exits 1. Codes are UPPER_SNAKE, in the same
// style as the CLI sessions' WebSocket error codes.
import type { ChatErrorCode } from "../../protocol/ai.ts"

export type ErrorCode =
  | "INVALID_JSON"
  | "VALIDATION_FAILED"
  | "AUTHENTICATION_FAILED"
  | "PERMISSION_DENIED"
  | "NOT_FOUND"
  | "CONFLICT"
  | "PAYLOAD_TOO_LARGE"
  | "LENGTH_REQUIRED"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "METHOD_NOT_ALLOWED"
  | "RATE_LIMIT_EXCEEDED"
  | "UPGRADE_REQUIRED"
  | "PROVIDER_UNAVAILABLE"
  | "RESOURCE_EXHAUSTED"
  | "AUDIT_UNAVAILABLE"
  | "STORE_UNAVAILABLE"
  | "INTERNAL"
  // The AI chat's own codes (its clients know them by these names).
  | ChatErrorCode

export class ChimeraError extends Error {
  override readonly name: string = "ChimeraError"
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message)
  }
}

export const notFound = (what: string) => new ChimeraError("NOT_FOUND", `${what} not found`)
export const conflict = (message: string, detail?: unknown) => new ChimeraError("CONFLICT", message, detail)
export const unauthenticated = (message: string) => new ChimeraError("AUTHENTICATION_FAILED", message)
export const forbidden = (message: string) => new ChimeraError("PERMISSION_DENIED", message)
export const invalid = (message: string, detail?: unknown) => new ChimeraError("VALIDATION_FAILED", message, detail)
