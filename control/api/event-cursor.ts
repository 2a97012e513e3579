// GET /api/events/last-id: the newest event's id (0 when there is none). A client reads it before the
// fleet and opens the event stream with it as Last-Event-ID, so every event after that moment reaches
// it, across reconnects, even if the first connection drops before it has carried any event.
import { Hono } from "hono"
import type { EventCursor } from "../adapters/store/event-cursor.ts"
import type { ApiEnv } from "./auth.ts"

export const eventCursorRoutes = (cursor: EventCursor) =>
  new Hono<ApiEnv>().get("/api/events/last-id", async (c) => c.json({ lastEventId: await cursor.lastId() }))
