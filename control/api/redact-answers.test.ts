// The answer-redaction net works on the JSON value, not on its text: a secret inside a string that
// holds escaped quotes is replaced and the answer stays valid JSON with every other field intact.
import { describe, expect, test } from "bun:test"
import { Hono } from "hono"
import type { ApiEnv } from "./auth.ts"
import { redactAnswers, redactedJson } from "./redact-answers.ts"

const ANSWER = {
  command: "export GH_TOKEN=\"a b\" && API_KEY='c d' deploy --password=e",
  tokensRevoked: 2,
  nested: [{ note: "Bearer abcdefghijklmnopqrstuvwxyz" }],
}
const EXPECTED = {
  command: "export GH_TOKEN=[redacted] && API_KEY=[redacted] deploy --password=[redacted]",
  tokensRevoked: 2,
  nested: [{ note: "Bearer [redacted]" }],
}

describe("answer redaction", () => {
  test("the chain's net replaces secrets inside strings and keeps the JSON valid", async () => {
    const app = new Hono<ApiEnv>().use("*", redactAnswers).get("/x", (c) => c.json(ANSWER))
    const res = await app.request("/x")
    expect(JSON.parse(await res.text())).toEqual(EXPECTED)
  })

  test("the fast path's serializer does the same", async () => {
    const app = new Hono<ApiEnv>().get("/x", (c) => redactedJson(c, ANSWER))
    expect(JSON.parse(await (await app.request("/x")).text())).toEqual(EXPECTED)
  })
})
