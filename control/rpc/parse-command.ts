// One line of the RPC's input read as a command, or the reason it is not one, in words a client's
// author can act on: "not JSON (…)", "unknown type \"x\": expected one of prompt, steer, …",
// "prompt: \"message\" is missing", "set_model: \"model\": expected a model name…". Whatever could be
// read of the line's `type` and `id` is kept, so the error response still names and correlates it.
import type { z } from "zod"
import { COMMAND_TYPES, RpcCommand, RpcId } from "./messages.ts"

export type Parsed =
  | { ok: true; command: RpcCommand }
  | { ok: false; command: string; id: z.infer<typeof RpcId> | null; error: string }

const _describe = (issue: z.core.$ZodIssue, type: string, record: Record<string, unknown>): string => {
  const path = issue.path.map(String).join(".")
  if (issue.code === "unrecognized_keys") return `${type}: unknown field ${issue.keys.map((k) => `"${k}"`).join(", ")}`
  const key = issue.path[0]
  if (typeof key === "string" && !Object.hasOwn(record, key)) return `${type}: "${path}" is missing`
  return `${type}: "${path}": ${issue.message}`
}

export function parseCommand(line: string): Parsed {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (error) {
    return { ok: false, command: "", id: null, error: `not JSON (${(error as Error).message})` }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, command: "", id: null, error: 'expected a JSON object with a "type"' }
  const record = value as Record<string, unknown>
  const id = RpcId.safeParse(record.id)
  const known = { id: id.success ? id.data : null }
  const type = record.type
  const expected = `expected one of ${COMMAND_TYPES.join(", ")}`
  if (type === undefined) return { ok: false, command: "", ...known, error: `"type" is missing: ${expected}` }
  if (typeof type !== "string")
    return { ok: false, command: "", ...known, error: `"type" must be a string: ${expected}` }
  if (!(COMMAND_TYPES as string[]).includes(type))
    return {
      ok: false,
      command: type.slice(0, 64),
      ...known,
      error: `unknown type ${JSON.stringify(type.slice(0, 64))}: ${expected}`,
    }
  const parsed = RpcCommand.safeParse(value)
  if (parsed.success) return { ok: true, command: parsed.data }
  const issue = parsed.error.issues[0]
  return { ok: false, command: type, ...known, error: issue ? _describe(issue, type, record) : `${type}: malformed` }
}
