// The answer-redaction net works on the JSON value, not on its text: a secret inside a string that
// holds escaped quotes is replaced and the answer stays valid JSON with every other field intact, and
// a secret behind an escape in the serialized text is seen as it stands in its string.
import { describe, expect, test } from "bun:test"
import { Hono } from "hono"
import type { ApiEnv } from "./auth.ts"
import { redactAnswers, redactedJson, redactedJsonText } from "./redact-answers.ts"

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

  test("a secret right after an escaped character (a newline, a tab, an escape) is found in the JSON text too", async () => {
    // Serialized, `line\nchm_…` puts the letter n of the escape before the token: no word boundary.
    const token = `chm_api_${"A".repeat(43)}`
    const answer = {
      output: `line\n${token}\n`,
      tab: "a\tBearer abcdefghijklmnopqrstuvwxyz",
      bell: `\u0007${token}`,
      nested: [`\r${token}`],
    }
    const expected = {
      output: "line\nchm_[redacted]\n",
      tab: "a\tBearer [redacted]",
      bell: "\u0007chm_[redacted]",
      nested: ["\rchm_[redacted]"],
    }
    expect(JSON.parse(redactedJsonText(answer))).toEqual(expected)
    const app = new Hono<ApiEnv>().use("*", redactAnswers).get("/x", (c) => c.json(answer))
    expect(JSON.parse(await (await app.request("/x")).text())).toEqual(expected)
  })
})
