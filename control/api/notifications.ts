// POST /api/notifications/test (admin): a test notice through each configured channel, or the one
// named, answered with each channel's outcome. A channel that fails is an outcome (200 with ok:false
// and the channel's error), not an API error: the request itself succeeded in finding that out.
import { Hono } from "hono"
import { z } from "zod"
import { type NotifyTest, TestTarget } from "../domain/notify-test.ts"
import { type ApiEnv, userOf } from "./auth.ts"
import { jsonBody } from "./validate.ts"

const NotifyTestBody = z.object({ channel: TestTarget.optional() }).strict()

export const notificationRoutes = (test: NotifyTest) =>
  new Hono<ApiEnv>().post("/api/notifications/test", jsonBody(NotifyTestBody), async (c) =>
    c.json(await test.run(userOf(c.get("principal")).name, c.req.valid("json").channel)),
  )
