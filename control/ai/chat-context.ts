// What a chat is bound to: a node (named `nodeId`, or `objectId` as older clients say) and an
// incident: an incident by its UUID (GET /api/incidents/:id) or a fleet event by its number. A change is checked against the fleet as the caller sees it, through
// the API, so a chat cannot be bound to a node or event its user could not read; null unbinds.
import type { ChatContextInput } from "../../protocol/ai.ts"
import { invalid } from "../domain/errors.ts"
import type { UserPrincipal } from "../domain/ports.ts"
import type { ChatRecord } from "./chat-records.ts"
import type { ChatCallContext, InternalApi } from "./internal-api.ts"

/** The incident of that id, or else the fleet event; null when neither exists for this user. */
export async function readIncident(
  api: InternalApi,
  who: UserPrincipal,
  id: number | string,
  from: ChatCallContext,
): Promise<{ kind: "incident" | "fleet event"; record: unknown } | null> {
  if (typeof id === "string") {
    const incident = await api(who, { method: "GET", path: `/api/incidents/${id}` }, from)
    return incident.status === 200 ? { kind: "incident", record: incident.body } : null
  }
  const page = await api(
    who,
    { method: "GET", path: "/api/events", query: { after: String(id - 1), limit: "1" } },
    from,
  )
  const event = ((page.body as { events?: { id?: number }[] } | null)?.events ?? []).find((e) => e.id === id)
  return event ? { kind: "fleet event", record: event } : null
}

/** The context change asked for, checked against the fleet as the caller sees it. */
export async function resolveContext(
  api: InternalApi,
  who: UserPrincipal,
  input: ChatContextInput,
  chat: Pick<ChatRecord, "id" | "model" | "nodeId" | "incidentId">,
) {
  const named = [input.nodeId, input.objectId].filter((v) => v !== undefined)
  const asText = named.map((v) => (v === null ? null : String(v)))
  if (asText.length === 2 && asText[0] !== asText[1])
    throw invalid("nodeId and objectId name different nodes; send one of them")
  let nodeId = chat.nodeId
  if (asText.length > 0) nodeId = asText[0] ?? null
  const incidentId = input.incidentId === undefined ? chat.incidentId : input.incidentId
  const from = { chatId: chat.id, model: chat.model }
  if (nodeId !== null && nodeId !== chat.nodeId) {
    const node = await api(who, { method: "GET", path: `/api/nodes/${encodeURIComponent(nodeId)}` }, from)
    if (node.status !== 200) throw invalid(`no enrolled node ${JSON.stringify(nodeId)} to bind the chat to`)
  }
  if (incidentId !== null && incidentId !== chat.incidentId && !(await readIncident(api, who, incidentId, from)))
    throw invalid(`no incident or fleet event ${incidentId} to bind the chat to`)
  return { nodeId, incidentId }
}
