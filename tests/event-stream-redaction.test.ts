// The live event stream passes the same secret net as the JSON answers: a node's failed heal that
// quotes a password, an API token, a bearer header and a JWT reaches a viewer's stream (live, and
// replayed from the store) redacted exactly as GET /api/events shows it, and so does the incident it
// opens, whose message repeats the error. The dashboard, `chimera events --follow` and MCP all read
// this one stream.
import { expect, test } from "bun:test"
import { addUser, call, enrollNode, login } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { streamText } from "./support/stream.ts"

const GEN = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const API_TOKEN = `chm_api_${"A".repeat(43)}`
const BEARER = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA"
const JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsImp0aSI6IjEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
const SECRETS = ["hunter2", API_TOKEN, BEARER, JWT]

const healFailed = {
  seq: 1,
  at: new Date().toISOString(),
  type: "heal.failed",
  data: {
    desired: GEN,
    attempt: 1,
    durationMs: 5,
    error: `activation hook failed: PGPASSWORD=hunter2 psql -c 'select 1' ${API_TOKEN}`,
    output: `curl -H 'Authorization: Bearer ${BEARER}' https://vault.internal\nsession ${JWT} expired\n`,
    retryInMs: 1000,
  },
}

interface Frame {
  id: number
  event: string
  data: string
}

function framesOf(text: string): Frame[] {
  const frames: Frame[] = []
  for (const block of text.split("\n\n")) {
    const id = /^id: (\d+)$/m.exec(block)?.[1]
    const event = /^event: (.*)$/m.exec(block)?.[1]
    const data = /^data: (.*)$/m.exec(block)?.[1]
    if (id !== undefined && event !== undefined && data !== undefined) frames.push({ id: Number(id), event, data })
  }
  return frames
}

async function readUntilIncident(url: string, token: string, query: string): Promise<Frame[]> {
  const ac = new AbortController()
  const res = await fetch(`${url}/api/events/stream?node=db-1${query}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: ac.signal,
  })
  expect(res.status).toBe(200)
  const stream = streamText(res.body as ReadableStream<Uint8Array>)
  try {
    await stream.until((t) => t.includes("event: ready"))
    return await readOn(stream)
  } finally {
    ac.abort()
  }
}

async function readOn(stream: ReturnType<typeof streamText>): Promise<Frame[]> {
  const ended = await stream.until((t) => framesOf(t).some((f) => f.event === "incident.opened"))
  if (ended) throw new Error(`the stream ended before the incident:\n${stream.text}`)
  return framesOf(stream.text)
}

function expectRedacted(frames: Frame[]) {
  const heal = frames.find((f) => f.event === "heal.failed")
  const incident = frames.find((f) => f.event === "incident.opened")
  expect(heal).toBeDefined()
  expect(incident).toBeDefined()
  for (const f of frames) for (const secret of SECRETS) expect(f.data).not.toContain(secret)
  const { data } = JSON.parse(heal?.data ?? "{}") as { data: { error: string; output: string } }
  expect(data.error).toBe("activation hook failed: PGPASSWORD=[redacted] psql -c 'select 1' chm_[redacted]")
  expect(data.output).toContain("Authorization: Bearer [redacted]")
  expect(data.output).toContain("session [redacted-jwt] expired")
  expect(incident?.data).toContain("PGPASSWORD=[redacted]")
  expect(incident?.data).toContain("chm_[redacted]")
}

test("a failed heal quoting secrets reaches a viewer's stream redacted as GET /api/events shows it", async () => {
  await using cp = await startInProcess()
  const credential = await enrollNode(cp, "db-1")
  await addUser(cp, "vera", "viewer")
  const viewer = await login(cp, "vera")

  // Live: the stream is open when the node reports.
  const ac = new AbortController()
  const res = await fetch(`${cp.url}/api/events/stream?node=db-1`, {
    headers: { authorization: `Bearer ${viewer}` },
    signal: ac.signal,
  })
  expect(res.status).toBe(200)
  const live = streamText(res.body as ReadableStream<Uint8Array>)
  await live.until((t) => t.includes("event: ready"))
  const reported = await call(cp, credential, "POST", "/api/agent/db-1/reports", { reports: [healFailed] })
  expect(reported.status).toBe(200)
  const frames = await readOn(live).finally(() => ac.abort())
  expectRedacted(frames)

  // The same events as the JSON answer shows them, byte for byte.
  const page = (await (await call(cp, viewer, "GET", "/api/events?node=db-1")).json()) as {
    events: { id: number }[]
  }
  for (const f of frames) expect(JSON.parse(f.data)).toEqual(page.events.find((e) => e.id === f.id))
  expect(JSON.stringify(page)).toContain("PGPASSWORD=[redacted] psql -c 'select 1' chm_[redacted]")

  // Replayed from the store (a reconnecting dashboard): the same net.
  const replayed = await readUntilIncident(cp.url, viewer, "&after=0")
  expectRedacted(replayed)
  for (const f of frames) expect(replayed.find((r) => r.id === f.id)?.data).toBe(f.data)
})
