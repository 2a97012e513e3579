// A chat bound to an incident the control plane opened: its id is the incident's UUID (as
// `chimera incidents` shows it), and the model is told the incident's own record, not a fleet event
// that happens to share a number. An id that names nothing is refused with a sentence, not a 5xx.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type { ChatState } from "../protocol/ai.ts"
import { aiSettingsFor, chatCall } from "./support/ai-chat.ts"
import { addUser, call, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"
import { type LlmServer, startLlmServer } from "./support/llm-server.ts"
import { healFailed, simAgent } from "./support/sim-agent.ts"
import { waitFor } from "./support/wait.ts"

let llm: LlmServer
let cp: TestControlPlane
let vera: string
let incident: { id: string; problem: string }

beforeAll(async () => {
  llm = await startLlmServer("anthropic")
  cp = await startInProcess({ ai: aiSettingsFor(llm) })
  await addUser(cp, "vera", "viewer")
  vera = await login(cp, "vera")
  await (await simAgent(cp, "db-1")).report(healFailed("activation of the new system failed"))
  const open = await waitFor(
    "the heal failure's incident",
    async () =>
      (await (await call(cp, vera, "GET", "/api/incidents?node=db-1")).json()) as {
        incidents: { id: string; problem: string }[]
      },
    (r) => r.incidents.length === 1,
  )
  incident = open.incidents[0] as { id: string; problem: string }
})
afterAll(async () => {
  await cp?.stop()
  await llm?.stop()
})

describe("a chat about an incident", () => {
  test("binds by the incident's id and tells the model that incident", async () => {
    const created = await chatCall(cp.url, vera, "POST", "/chat", { incidentId: incident.id })
    expect(created.status).toBe(201)
    const { chatId } = (await created.json()) as { chatId: number }
    const state = (await (await chatCall(cp.url, vera, "GET", `/chat/${chatId}`)).json()) as ChatState
    expect(state.context).toEqual({ nodeId: null, incidentId: incident.id })

    llm.script({ text: "The activation failed on db-1." })
    const before = llm.requests.length
    const answer = await chatCall(cp.url, vera, "POST", `/chat/${chatId}/message`, { message: "What broke?" })
    expect(answer.status).toBe(200)
    const sent = llm.requests[before]
    expect(sent?.system).toContain(`This chat is about incident ${incident.id}`)
    expect(sent?.system).toContain(incident.problem)
    expect(sent?.system).toContain("db-1")
  })

  test("an incident id that names nothing, or is neither a UUID nor a number, is refused with what was expected", async () => {
    const missing = await chatCall(cp.url, vera, "POST", "/chat", { incidentId: crypto.randomUUID() })
    expect(missing.status).toBe(422)
    expect(((await missing.json()) as { error: string }).error).toContain("no incident or fleet event")
    const garbled = await chatCall(cp.url, vera, "POST", "/chat", { incidentId: "INC-12" })
    expect([400, 422]).toContain(garbled.status)
    expect(JSON.stringify(await garbled.json())).toContain("UUID")
  })
})
