// The AI chat's routes under /api/v1/ai (the contract is protocol/ai.ts): bodies parsed with zod at
// the edge, the chat's use cases in control/ai/chats.ts. Without a configured provider every route
// answers 503 AI_UNAVAILABLE with how to configure one. A streamed message or answer is
// text/event-stream: `token`, `tool` and `question` events, then `done` (or `error`); each event's
// data passes the same secret net as JSON answers. A turn outlives a client that goes away: what it
// says is stored and GET /chat/:id shows it, and GET /chat/:id/follow streams the running turn again,
// from its start, through any replica.
import { type Context, Hono } from "hono"
import { z } from "zod"
import {
  AnswerRequest,
  CancelRequest,
  ChatId,
  type ChatStreamEvent,
  CreateChatRequest,
  isLastEvent,
  SendMessageRequest,
  SteerRequest,
  UpdateChatRequest,
} from "../../protocol/ai.ts"
import { createSecretStream } from "../../protocol/secret-stream.ts"
import type { Chats } from "../ai/chats.ts"
import type { Listener, RunningTurn } from "../ai/turns.ts"
import type { Authenticator } from "../domain/auth/authenticator.ts"
import { ChimeraError } from "../domain/errors.ts"
import { type ApiEnv, bearerToken, internalPrincipal, userOf } from "./auth.ts"
import { redactedJsonText } from "./redact-answers.ts"
import { streamCredentials } from "./stream-credentials.ts"
import { jsonBody, optionalJsonBody, params } from "./validate.ts"

// The CLI tells this case from a failing provider (same code) by these opening words: keep them.
const NOT_CONFIGURED =
  'no AI provider is configured: set provider = "anthropic" or "openai" (with model, and api_key_file or CHIMERA_AI_API_KEY; base_url for a local server) in the [ai] section of the file CHIMERA_CONFIG_FILE names, or CHIMERA_AI_PROVIDER and friends, then restart the control plane (docs/configuration.md)'

const ChatPath = z.object({ id: z.coerce.number().pipe(ChatId) })
const KEEP_ALIVE_MS = 15_000

type BunServer = { timeout?: (request: Request, seconds: number) => void }
/** A turn may take several model calls and tool runs, each bounded on its own: no idle cut-off. */
const holdOpen = (c: Context) => (c.env as BunServer | undefined)?.timeout?.(c.req.raw, 0)

const frame = (e: ChatStreamEvent) => `event: ${e.event}\ndata: ${redactedJsonText(e.data)}\n\n`

/** How long an answer to "may this credential still read?" counts for a chat stream. */
const RECHECK_MS = 5_000

/**
 * Starts (or follows) the turn with a listener that buffers until the stream is read; a refusal stays
 * a JSON error. What `start` returns, if a function, stops the events when the client goes away.
 * `stillAllowed` is asked, at most every RECHECK_MS, before a frame goes out: a stream outlives the
 * guard's moment, and one whose credential was revoked meanwhile (or lost its role) ends with an
 * `error` event saying so, as the event stream does (stream-credentials.ts); its turn goes on, stored.
 */
async function streamed(
  c: Context,
  start: (l: Listener) => Promise<RunningTurn | (() => void)>,
  stillAllowed: (sinceMs: number) => Promise<string | null>,
): Promise<Response> {
  const buffered: ChatStreamEvent[] = []
  let write: Listener = (e) => void buffered.push(e)
  const started = await start((e) => write(e))
  const detach = typeof started === "function" ? started : () => {}
  holdOpen(c)
  const encoder = new TextEncoder()
  let timer: ReturnType<typeof setInterval> | undefined
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      let open = true
      const end = () => {
        open = false
        clearInterval(timer)
        controller.close()
      }
      // Frames go out in order behind the credential's check, which may wait on the store.
      let queue = Promise.resolve()
      const send = (text: string, last = false) => {
        queue = queue.then(async () => {
          if (!open) return
          const refused = await stillAllowed(performance.now() - RECHECK_MS).catch(() => null)
          if (!open) return
          try {
            if (refused !== null) {
              const error = { code: "AUTHENTICATION_FAILED", message: `${refused}; the stream ends` }
              controller.enqueue(encoder.encode(frame({ event: "error", data: error })))
              write = () => {}
              detach()
              return end()
            }
            controller.enqueue(encoder.encode(text))
            if (last) end()
          } catch {
            open = false
          }
        })
      }
      // The model's text comes in tokens: a secret it repeats may be cut between two, so their text
      // goes through one SecretStream, and what it holds back goes out before any other event.
      const secrets = createSecretStream()
      write = (e) => {
        if (e.event === "token") {
          const text = secrets.push(e.data.text)
          if (text !== "") send(frame({ event: "token", data: { text } }))
          return
        }
        const rest = secrets.end()
        if (rest !== "") send(frame({ event: "token", data: { text: rest } }))
        send(frame(e), isLastEvent(e))
      }
      // A first comment sends the headers now: a client waits for them before it reads any event.
      send(": stream\n\n")
      timer = setInterval(() => send(": keep-alive\n\n"), KEEP_ALIVE_MS)
      for (const e of buffered.splice(0)) write(e)
    },
    cancel() {
      clearInterval(timer)
      write = () => {}
      detach()
    },
  })
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  })
}

/**
 * A turn that failed after an answer (`wait: true`): the answer stands and its result (the action's
 * output, or "not run") is in the chat; only what came after it failed, and the error says so, lest
 * the 503 read as "nothing happened" and the action be asked for again.
 */
const afterAnswered = (error: unknown) =>
  error instanceof ChimeraError
    ? new ChimeraError(
        error.code,
        `your answer was recorded and its result is in the chat (GET /api/v1/ai/chat/:id); the turn after it failed: ${error.message}`,
        error.detail,
      )
    : error

/**
 * Follows one user may hold open at once on this replica: one followed on another replica reads the
 * store each second. Counted per process, so N replicas take N times as many; the bound is on each.
 */
export const FOLLOWS_PER_USER = 16

/**
 * Counts each user's open follows: `follow` takes a place (RESOURCE_EXHAUSTED past the cap) and wraps
 * the follow so that its place is given back once, whichever way it ends: refused, at its turn's last
 * event, or when its client goes away.
 */
function followPlaces() {
  const open = new Map<string, number>()
  return async (user: string, start: (l: Listener) => Promise<() => void>, l: Listener) => {
    const n = open.get(user) ?? 0
    if (n >= FOLLOWS_PER_USER)
      throw new ChimeraError(
        "RESOURCE_EXHAUSTED",
        `at most ${FOLLOWS_PER_USER} chat follows may be open at once for one user; close one (its stream) and follow again`,
      )
    open.set(user, n + 1)
    let held = true
    const release = () => {
      if (!held) return
      held = false
      const left = (open.get(user) ?? 1) - 1
      if (left > 0) open.set(user, left)
      else open.delete(user)
    }
    try {
      const stop = await start((e) => {
        if (isLastEvent(e)) release()
        l(e)
      })
      return () => {
        release()
        stop()
      }
    } catch (error) {
      release()
      throw error
    }
  }
}

export const aiChatRoutes = (chats: Chats | null, authenticator: Authenticator | null = null) => {
  const ready = (): Chats => {
    if (!chats) throw new ChimeraError("AI_UNAVAILABLE", NOT_CONFIGURED)
    return chats
  }
  const credentials = authenticator ? streamCredentials(authenticator) : null
  /** Whether the request's credential may still read, for its stream; in-process callers have none to ask. */
  const stillAllowed = (c: Context) => {
    if (credentials === null || internalPrincipal(c) !== null) return async () => null
    const token = bearerToken(c.req.header("authorization"))
    return (sinceMs: number) => credentials.refusal(token, sinceMs)
  }
  const followed = followPlaces()
  return new Hono<ApiEnv>()
    .get("/api/v1/ai/chat", async (c) => c.json(await ready().list(userOf(c.get("principal")))))
    .post("/api/v1/ai/chat", jsonBody(CreateChatRequest), async (c) => {
      const made = await ready().create(userOf(c.get("principal")), c.req.valid("json"))
      return c.json(made, 201)
    })
    .get("/api/v1/ai/chat/:id", params(ChatPath), async (c) =>
      c.json(await ready().get(c.req.valid("param").id, userOf(c.get("principal")))),
    )
    .patch("/api/v1/ai/chat/:id", params(ChatPath), jsonBody(UpdateChatRequest), async (c) =>
      c.json(await ready().update(c.req.valid("param").id, userOf(c.get("principal")), c.req.valid("json"))),
    )
    .delete("/api/v1/ai/chat/:id", params(ChatPath), async (c) =>
      c.json(await ready().remove(c.req.valid("param").id, userOf(c.get("principal")))),
    )
    .post("/api/v1/ai/chat/:id/message", params(ChatPath), jsonBody(SendMessageRequest), async (c) => {
      const turn = await ready().message(c.req.valid("param").id, userOf(c.get("principal")), c.req.valid("json"), null)
      holdOpen(c)
      return c.json(await turn.outcome)
    })
    .post("/api/v1/ai/chat/:id/message/stream", params(ChatPath), jsonBody(SendMessageRequest), (c) =>
      streamed(
        c,
        (l) => ready().message(c.req.valid("param").id, userOf(c.get("principal")), c.req.valid("json"), l),
        stillAllowed(c),
      ),
    )
    .get("/api/v1/ai/chat/:id/follow", params(ChatPath), (c) => {
      const who = userOf(c.get("principal"))
      return streamed(
        c,
        (l) => followed(who.subject, (listener) => ready().follow(c.req.valid("param").id, who, listener), l),
        stillAllowed(c),
      )
    })
    .get("/api/v1/ai/chat/:id/question", params(ChatPath), async (c) =>
      c.json(await ready().question(c.req.valid("param").id, userOf(c.get("principal")))),
    )
    .post("/api/v1/ai/chat/:id/answer", params(ChatPath), jsonBody(AnswerRequest), async (c) => {
      const body = c.req.valid("json")
      const turn = await ready().answer(c.req.valid("param").id, userOf(c.get("principal")), body, null)
      if (!body.wait) return c.json({ success: true as const })
      holdOpen(c)
      const outcome = await turn.outcome.catch((error) => {
        throw afterAnswered(error)
      })
      return c.json({ success: true as const, ...outcome })
    })
    .post("/api/v1/ai/chat/:id/answer/stream", params(ChatPath), jsonBody(AnswerRequest), (c) =>
      streamed(
        c,
        (l) => ready().answer(c.req.valid("param").id, userOf(c.get("principal")), c.req.valid("json"), l),
        stillAllowed(c),
      ),
    )
    .post("/api/v1/ai/chat/:id/compact", params(ChatPath), async (c) =>
      c.json(await ready().compact(c.req.valid("param").id, userOf(c.get("principal")))),
    )
    .post("/api/v1/ai/chat/:id/cancel", params(ChatPath), optionalJsonBody(CancelRequest), async (c) =>
      c.json(await ready().cancel(c.req.valid("param").id, userOf(c.get("principal")), c.req.valid("json").turnId)),
    )
    .post("/api/v1/ai/chat/:id/steer", params(ChatPath), jsonBody(SteerRequest), async (c) =>
      c.json(await ready().steer(c.req.valid("param").id, userOf(c.get("principal")), c.req.valid("json").message)),
    )
}
