// The body validators as a route sees them, through app.request (no socket) and the API's onError.
import { describe, expect, test } from "bun:test"
import { Hono } from "hono"
import { z } from "zod"
import { onError } from "./errors.ts"
import { optionalJsonBody } from "./validate.ts"

const app = new Hono()
  .post("/cancel", optionalJsonBody(z.object({ turnId: z.uuid().optional() }).strict()), (c) =>
    c.json({ body: c.req.valid("json") }),
  )
  .onError(onError)

const post = async (headers: Record<string, string>, body?: string) => {
  const res = await app.request("/cancel", { method: "POST", headers, ...(body === undefined ? {} : { body }) })
  return { status: res.status, body: (await res.json()) as unknown }
}

describe("optionalJsonBody", () => {
  // A client whose every request says application/json (a shared header set) sent its cancel with no
  // body and got 400 INVALID_JSON: the turn it meant to stop ran on. Before the body became optional,
  // the route read none and the cancel went through.
  test("a request with no body reads as {}, whatever its Content-Type says", async () => {
    const bodiless: Record<string, string>[] = [
      {},
      { "content-type": "application/json" },
      { "content-type": "application/json", "content-length": "0" },
      { "content-type": "text/plain", "content-length": "0" },
    ]
    for (const headers of bodiless)
      expect({ headers, ...(await post(headers)) }).toEqual({ headers, status: 200, body: { body: {} } })
  })

  test("a request with a body is held to jsonBody's rules", async () => {
    const turnId = "0b7f2c4e-8a51-4f7e-9d2a-3c6b1e5f7a90"
    expect(await post({ "content-type": "application/json" }, JSON.stringify({ turnId }))).toEqual({
      status: 200,
      body: { body: { turnId } },
    })
    expect((await post({ "content-type": "application/json" }, "{")).status).toBe(400)
    expect((await post({ "content-type": "text/plain" }, JSON.stringify({ turnId }))).status).toBe(415)
    expect((await post({ "content-type": "application/json" }, JSON.stringify({ turnId: "5" }))).status).toBe(422)
  })
})
