// Running one tool call through the API as a given user, and what the model reads of the outcome: the
// API's answer as JSON, cut to a size a context can hold. A relayed command that failed on a node is
// answered 200 by the API but is a failure here, so the model and the stream both see it as one.
import type { UserPrincipal } from "../domain/ports.ts"
import type { ChatCallContext, InternalApi } from "./internal-api.ts"
import type { ChatTool } from "./tools.ts"

const MAX_RESULT_CHARS = 16_000

export interface ToolOutcome {
  ok: boolean
  status: number
  result: unknown
}

export async function runTool(
  api: InternalApi,
  tool: ChatTool,
  args: Record<string, unknown>,
  as: UserPrincipal,
  from: ChatCallContext,
  /** The turn's: cancelling it cancels what the call started (a relayed command). */
  signal?: AbortSignal,
): Promise<ToolOutcome> {
  const how = tool.run(args)
  if ("value" in how) return { ok: true, status: 200, result: how.value }
  const answer = await api(as, how.request, from, signal)
  const body = answer.body as { summary?: { ok?: number }; results?: unknown[] } | null
  const allRan =
    body && typeof body === "object" && body.summary && Array.isArray(body.results)
      ? body.summary.ok === body.results.length
      : true
  return { ok: answer.status < 300 && allRan, status: answer.status, result: answer.body }
}

/** The tool result the model reads. */
export function resultText(outcome: ToolOutcome): string {
  const json = JSON.stringify(
    outcome.status < 300 ? outcome.result : { status: outcome.status, ...asObject(outcome.result) },
  )
  if (json === undefined) return "(no output)"
  return json.length > MAX_RESULT_CHARS
    ? `${json.slice(0, MAX_RESULT_CHARS)}… (cut: ${json.length} characters in all)`
    : json
}

const asObject = (v: unknown) => (v !== null && typeof v === "object" ? (v as Record<string, unknown>) : { body: v })
