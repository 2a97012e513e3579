// The ticket systems against local servers that check what ServiceNow's Table API and Jira's REST v3
// check (tests/support/servicenow-server.ts, jira-server.ts): one ticket per incident through its
// life (create, note, resolve, look up), a retried create that finds the first ticket instead of
// opening a second, and each failure as the outbox needs it, with no credential in any error.
import { describe, expect, test } from "bun:test"
import { createJira, type JiraSettings } from "../control/adapters/notify/jira.ts"
import { createServiceNow } from "../control/adapters/notify/servicenow.ts"
import type { DeliveryFailure, DeliveryResult } from "../control/domain/notifications.ts"
import { type JiraFake, startJira } from "./support/jira-server.ts"
import { DESIRED, notice } from "./support/notice.ts"
import { type ServiceNowFake, startServiceNow } from "./support/servicenow-server.ts"

const HTTP = { timeoutMs: 10_000 }

function failed(result: DeliveryResult | { ok: boolean }): DeliveryFailure {
  if (result.ok) throw new Error("expected the call to fail, but it succeeded")
  return result as DeliveryFailure
}

function externalId(result: DeliveryResult): string {
  if (!result.ok || !result.externalId) throw new Error(`expected a ticket id, got ${JSON.stringify(result)}`)
  return result.externalId
}

describe("servicenow", () => {
  const system = (sn: ServiceNowFake, password = sn.password) =>
    createServiceNow({ url: sn.url, username: sn.user, password, closeCode: "Solved (Permanently)" }, HTTP)

  test("an incident is created, noted as it changes, resolved with a close code and notes, and looked up", async () => {
    await using sn = startServiceNow()
    const tickets = system(sn)
    const created = await tickets.create(notice())
    const id = externalId(created)
    expect(id).toMatch(/^[0-9a-f]{32}$/)
    expect(created).toMatchObject({ ok: true, label: "INC0010001" })
    const record = sn.incidents.get(id)
    expect(record).toMatchObject({
      short_description: "web-1: heal failed",
      urgency: "1",
      impact: "1",
      correlation_id: "chimera-inc-42",
      state: "1",
    })
    expect(record?.description).toContain(`Desired closure: ${DESIRED}`)

    expect((await tickets.update(id, notice({ step: "updated", message: "still failing" }))).ok).toBe(true)
    expect(sn.incidents.get(id)?.work_notes[0]).toContain("Update: web-1: heal failed")
    expect(sn.incidents.get(id)?.work_notes[0]).toContain("still failing")

    expect((await tickets.resolve(id, notice({ step: "resolved", message: "healed on retry" }))).ok).toBe(true)
    expect(sn.incidents.get(id)).toMatchObject({ state: "6", close_code: "Solved (Permanently)" })
    expect(sn.incidents.get(id)?.close_notes).toContain("healed on retry")

    expect(await tickets.get(id)).toMatchObject({
      ok: true,
      ticket: { id, label: "INC0010001", status: "Resolved", resolved: true },
    })
    expect(sn.received.every((r) => r.headers.authorization?.startsWith("Basic "))).toBe(true)
  })

  test("a node's [code] tags reach no field as markup (journal fields render HTML between them)", async () => {
    await using sn = startServiceNow()
    const tickets = system(sn)
    // A failed heal's error is the node's own text; ServiceNow shows what lies between [code] and
    // [/code] in a journal field (work notes) as HTML, where a link or a form would pass for ours.
    const said = 'failed: [code]<a href="https://sso.example/login">Re-authenticate Chimera</a>[/CODE] [ code ]'
    const id = externalId(await tickets.create(notice({ message: said })))
    await tickets.update(id, notice({ step: "updated", message: said }))
    await tickets.resolve(id, notice({ step: "resolved", message: said }))
    const record = sn.incidents.get(id)
    const texts = [record?.description, ...(record?.work_notes ?? []), record?.close_notes].map(String)
    for (const text of texts) {
      expect(text).toContain('<a href="https://sso.example/login">Re-authenticate Chimera</a>')
      expect(text).not.toMatch(/\[\s*\/?\s*code\s*\]/i)
    }
  })

  test("a create retried after its answer was lost finds the incident instead of opening a second", async () => {
    await using sn = startServiceNow()
    const tickets = system(sn)
    const first = externalId(await tickets.create(notice()))
    expect(externalId(await tickets.create(notice()))).toBe(first)
    expect(sn.incidents.size).toBe(1)
    expect(externalId(await tickets.create(notice({ incidentId: "inc-43" })))).not.toBe(first)
  })

  test("an incident id cannot widen the lookup by correlation id (no encoded-query operators)", async () => {
    await using sn = startServiceNow()
    const tickets = system(sn)
    const first = externalId(await tickets.create(notice({ incidentId: "a" })))
    const odd = externalId(await tickets.create(notice({ incidentId: "b^ORcorrelation_id=chimera-a" })))
    expect(odd).not.toBe(first)
    expect(sn.incidents.get(odd)?.correlation_id).toBe("chimera-b_ORcorrelation_id_chimera-a")
  })

  test("a wrong password is not retried, and neither it nor its Basic header is in the error", async () => {
    await using sn = startServiceNow()
    const wrong = "wrong-sn-password-value"
    const result = failed(await system(sn, wrong).create(notice()))
    expect(result.retryable).toBe(false)
    expect(result.error).toBe(
      `servicenow: ${new URL(sn.url).host} answered 401 User Not Authenticated: Required to provide Auth information: check the credential`,
    )
    expect(result.error).not.toContain(wrong)
    expect(result.error).not.toContain(Buffer.from(`${sn.user}:${wrong}`).toString("base64"))
  })

  test("check reads the incident table without writing; a wrong password fails it", async () => {
    await using sn = startServiceNow()
    expect(await system(sn).check()).toEqual({ ok: true })
    const refused = failed(await system(sn, "not-the-password").check())
    expect(refused.retryable).toBe(false)
    expect(refused.error).toContain("answered 401 User Not Authenticated")
    expect(sn.received.every((r) => r.method === "GET")).toBe(true)
  })

  test("an unknown ticket looks up as none; updating it is not retried", async () => {
    await using sn = startServiceNow()
    const tickets = system(sn)
    expect(await tickets.get("0123456789abcdef0123456789abcdef")).toEqual({ ok: true, ticket: null })
    const result = failed(await tickets.update("0123456789abcdef0123456789abcdef", notice({ step: "updated" })))
    expect(result.retryable).toBe(false)
    expect(result.error).toContain("answered 404 No Record found")
  })

  test("an instance under maintenance (503 with Retry-After) is retried after the wait it asked for", async () => {
    await using sn = startServiceNow()
    sn.failNext(1, { status: 503, headers: { "retry-after": "120" }, body: "<html>Hibernating</html>" })
    expect(failed(await system(sn).create(notice()))).toMatchObject({ retryable: true, retryAfterMs: 120_000 })
    expect((await system(sn).create(notice())).ok).toBe(true)
  })

  test("a resolution the instance's data policy refuses (no close code) is not retried", async () => {
    await using sn = startServiceNow()
    const tickets = createServiceNow({ url: sn.url, username: sn.user, password: sn.password, closeCode: "" }, HTTP)
    const id = externalId(await tickets.create(notice()))
    const result = failed(await tickets.resolve(id, notice({ step: "resolved" })))
    expect(result.retryable).toBe(false)
    expect(result.error).toContain("403 Operation Failed: Data Policy Exception")
  })
})

describe("jira", () => {
  const settings = (jira: JiraFake, over: Partial<JiraSettings> = {}): JiraSettings => ({
    url: jira.url,
    username: jira.email,
    apiToken: jira.token,
    projectKey: jira.project,
    issueType: "Task",
    doneTransition: "",
    ...over,
  })

  test("an issue is created in the project, commented as it changes, and transitioned into Done", async () => {
    await using jira = startJira()
    const tickets = createJira(settings(jira), HTTP)
    const created = await tickets.create(notice())
    expect(created).toEqual({ ok: true, externalId: "OPS-1", label: "OPS-1", url: `${jira.url}/browse/OPS-1` })
    const issue = jira.issues.get("OPS-1")
    expect(issue).toMatchObject({ summary: "web-1: heal failed", labels: ["chimera", "chimera-inc-42"] })
    expect(JSON.stringify(issue?.description)).toContain(DESIRED)

    expect((await tickets.update("OPS-1", notice({ step: "updated", message: "still failing" }))).ok).toBe(true)
    expect(JSON.stringify(jira.issues.get("OPS-1")?.comments[0])).toContain("still failing")
    expect(await tickets.get("OPS-1")).toMatchObject({ ok: true, ticket: { status: "To Do", resolved: false } })

    expect((await tickets.resolve("OPS-1", notice({ step: "resolved", message: "healed" }))).ok).toBe(true)
    expect(jira.issues.get("OPS-1")?.status).toBe("Done")
    expect(JSON.stringify(jira.issues.get("OPS-1")?.comments[1])).toContain("healed")
    expect(await tickets.get("OPS-1")).toMatchObject({
      ok: true,
      ticket: { id: "OPS-1", status: "Done", resolved: true },
    })
  })

  test("a resolve repeated (or of an issue closed by hand) comments and transitions nothing more", async () => {
    await using jira = startJira()
    const tickets = createJira(settings(jira), HTTP)
    await tickets.create(notice())
    await tickets.resolve("OPS-1", notice({ step: "resolved" }))
    expect((await tickets.resolve("OPS-1", notice({ step: "resolved" }))).ok).toBe(true)
    expect(jira.issues.get("OPS-1")?.comments).toHaveLength(1)
    expect(jira.received.filter((r) => r.method === "POST" && r.path.endsWith("/transitions"))).toHaveLength(1)
  })

  test("a message of several lines becomes ADF paragraphs with hard breaks, which Jira accepts", async () => {
    await using jira = startJira()
    const tickets = createJira(settings(jira), HTTP)
    await tickets.create(notice({ message: "activation failed:\n\nunit nginx.service\nexit 1" }))
    const description = JSON.stringify(jira.issues.get("OPS-1")?.description)
    expect(description).toContain(
      '{"type":"text","text":"activation failed:"},{"type":"hardBreak"},{"type":"hardBreak"}',
    )
    expect(description).not.toContain("\\n")
  })

  test("a create retried after its answer was lost finds the issue by its label", async () => {
    await using jira = startJira()
    const tickets = createJira(settings(jira), HTTP)
    expect(externalId(await tickets.create(notice()))).toBe("OPS-1")
    expect(externalId(await tickets.create(notice()))).toBe("OPS-1")
    expect(jira.issues.size).toBe(1)
  })

  test("a transition named in config that does not exist is a clear, final error listing what exists", async () => {
    await using jira = startJira()
    const tickets = createJira(settings(jira, { doneTransition: "Resolve" }), HTTP)
    await tickets.create(notice())
    const result = failed(await tickets.resolve("OPS-1", notice({ step: "resolved" })))
    expect(result).toEqual({
      ok: false,
      retryable: false,
      error:
        'jira: OPS-1 has no transition "Resolve" from To Do (it has: Start progress, Close issue); set itsm.done_transition',
    })
    expect(jira.issues.get("OPS-1")?.comments).toEqual([])
    const named = createJira(settings(jira, { doneTransition: "close ISSUE" }), HTTP)
    expect((await named.resolve("OPS-1", notice({ step: "resolved" }))).ok).toBe(true)
  })

  test("check reads the project and its issue types: a wrong key or type is named with what to set", async () => {
    await using jira = startJira()
    expect(await createJira(settings(jira), HTTP).check()).toEqual({ ok: true })
    expect(await createJira(settings(jira, { projectKey: "NOPE" }), HTTP).check()).toEqual({
      ok: false,
      retryable: false,
      error: "jira: no project NOPE visible to this account: check itsm.project_key",
    })
    expect(await createJira(settings(jira, { issueType: "Incident" }), HTTP).check()).toEqual({
      ok: false,
      retryable: false,
      error: 'jira: project OPS has no issue type "Incident" (it has: Task, Bug): set itsm.issue_type',
    })
    expect(jira.issues.size).toBe(0)
  })

  test("a wrong token is not retried, and the error says what to check without the token", async () => {
    await using jira = startJira()
    const wrong = "ATATT-wrong-token-never-shown"
    const result = failed(await createJira(settings(jira, { apiToken: wrong }), HTTP).create(notice()))
    expect(result.retryable).toBe(false)
    expect(result.error).toBe(
      `jira: ${new URL(jira.url).host} answered 401 Client must be authenticated to access this resource.: check itsm.username (the account's email) and itsm.api_key (an API token)`,
    )
    expect(result.error).not.toContain(wrong)
  })

  test("a project or issue type Jira does not have is refused with Jira's own field errors", async () => {
    await using jira = startJira()
    const result = failed(
      await createJira(settings(jira, { projectKey: "NOPE", issueType: "Incident" }), HTTP).create(notice()),
    )
    expect(result.retryable).toBe(false)
    expect(result.error).toContain(
      "answered 400 project: valid project is required; issuetype: Specify a valid issue type",
    )
  })

  test("a resolve of several requests ends within one timeout, not one per request", async () => {
    await using jira = startJira()
    await createJira(settings(jira), HTTP).create(notice())
    // Each answer comes 700 ms late: one request fits in 1.5 s, the resolve's four do not.
    const slow = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        await Bun.sleep(700)
        const url = new URL(req.url)
        return fetch(`${jira.url}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          body: req.method === "GET" ? undefined : await req.text(),
        })
      },
    })
    try {
      const tickets = createJira(settings(jira, { url: `http://127.0.0.1:${slow.port}` }), { timeoutMs: 1500 })
      const result = failed(await tickets.resolve("OPS-1", notice({ step: "resolved" })))
      expect(result).toMatchObject({ retryable: true })
      expect(result.error).toBe(`jira: no answer from 127.0.0.1:${slow.port} within 1.5 s`)
      expect(jira.issues.get("OPS-1")?.status).toBe("To Do")
    } finally {
      await slow.stop(true)
    }
  })

  test("throttling (429 with Retry-After) is retried; an unknown issue looks up as none", async () => {
    await using jira = startJira()
    const tickets = createJira(settings(jira), HTTP)
    jira.failNext(1, { status: 429, headers: { "retry-after": "3" } })
    expect(failed(await tickets.create(notice()))).toMatchObject({ retryable: true, retryAfterMs: 3000 })
    expect(await tickets.get("OPS-99")).toEqual({ ok: true, ticket: null })
  })
})
