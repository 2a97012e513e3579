// `chimera events [--node ID] [--type T,…] [--after ID] [--follow]`: the fleet's latest events (or a
// page of the log from an id on), or its live stream.
import { defineCommand } from "citty"
import { z } from "zod"
import { NodeId } from "../../protocol/ids.ts"
import { EventType, type FleetEvent } from "../domain/events.ts"
import { apiClient, call, refusal, unreachable } from "./client.ts"
import { CliError } from "./errors.ts"
import { limitFlag } from "./flags.ts"
import { announceIdentity } from "./identity.ts"
import { color, field, jsonLine, printJson, printTable, say, tableLine, warn } from "./output.ts"
import { readSse, SseError, type SseRecord } from "./sse-reader.ts"
import { noSuchNode } from "./unknown-node.ts"

const Types = z
  .string()
  .transform((s) => s.split(",").map((t) => t.trim()))
  .pipe(z.array(EventType))

const str = (v: unknown) => (typeof v === "string" ? v : "")

/**
 * A message's first line in a row, up to `max` characters and an ellipsis: a heal's error ends with
 * what to do (`copy the closure to the node or add a substituter`), so it is cut late and visibly.
 */
const clip = (v: unknown, max = 240) => {
  const line = String(v).split("\n", 1)[0] ?? ""
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

/** "a, b, c and 4 more": a deploy may have hundreds of targets, and a row is one line. */
const names = (v: unknown, shown = 5) => {
  const all = Array.isArray(v) ? v.map(String) : []
  return all.length > shown ? `${all.slice(0, shown).join(", ")} and ${all.length - shown} more` : all.join(", ")
}

const summary = (e: FleetEvent) => {
  const d = e.data as Record<string, unknown>
  const hash = (p: unknown) => (typeof p === "string" ? p.slice(11, 23) : "-")
  if (e.type === "drift.detected") return `${(d.kinds as string[]).join(", ")} (desired ${hash(d.desired)})`
  if (e.type === "heal.succeeded") return `healed to ${hash(d.desired)} in ${d.durationMs} ms`
  if (e.type === "heal.failed") return `attempt ${d.attempt}: ${clip(d.error)}`
  if (e.type === "desired.changed") return `desired ${hash(d.to)}`
  if (e.type.startsWith("incident."))
    return `${d.problem} (${d.severity})${typeof d.ticketId === "string" ? `, ticket ${d.ticketId}` : ""}`
  // A deploy's events carry its id, so its start, each target's phases and its end can be matched up.
  if (e.type === "deployment.started")
    return `${str(d.id)} by ${str(d.actor) || "?"}: ${hash(d.closure)} to ${names(d.targets)}`
  if (e.type === "deployment.progress") return `${str(d.phase)}: ${clip(str(d.message))}`
  if (e.type === "deployment.finished") {
    const outcome = d.error !== undefined ? `: ${clip(d.error)}` : ` (${hash(d.closure)})`
    return `${str(d.id)} ${str(d.status)}${outcome}${d.recorded === true ? " (reported)" : ""}`
  }
  return ""
}

const failed = (e: FleetEvent) =>
  e.type === "heal.failed" ||
  (e.type === "deployment.finished" && (e.data.status === "failed" || e.data.status === "partial"))

const HEADERS = ["ID", "AT", "NODE", "TYPE", "DETAIL"]

const row = (e: FleetEvent) => [
  String(e.id),
  e.at,
  // Deploy progress stored before it was filed under its target still names the target in its data.
  e.nodeId ?? (str(e.data.target) || "-"),
  failed(e) ? color.red(e.type) : e.type,
  summary(e),
]

// --follow prints each row as it comes, so its columns cannot be measured first: fixed widths for
// ids below ten million, ISO times, node names of up to 16 characters and every event type. A longer
// value pushes the rest of its own row only.
const FOLLOW_WIDTHS = [7, 24, 16, Math.max(...EventType.options.map((t) => t.length))]

/**
 * Why `--node ID` found nothing, when the reason is that no node has that id (most often a typo), as
 * a sentence naming the nearest and the known ones; null for a node the control plane knows.
 */
async function _unknownNode(api: ReturnType<typeof apiClient>, id: string): Promise<string | null> {
  const { url, client } = api
  const res = await client.api.nodes[":id"].$get({ param: { id } }).catch((error: unknown) => {
    throw unreachable(url, error)
  })
  if (res.ok) return null
  if (res.status !== 404) throw await refusal(url, res)
  // A name with events of its own is known even if no agent enrolled under it (a [fleet.nodes] name
  // deployed to over SSH files its deploy events under it).
  if ((await _firstEventId(api, { node: id })) !== undefined) return null
  return noSuchNode(api, id)
}

/** The id of the first (oldest) event `query` matches, if there is one. */
async function _firstEventId(
  api: ReturnType<typeof apiClient>,
  query: { node?: string; type?: FleetEvent["type"][]; after?: number },
): Promise<number | undefined> {
  const { events } = await call(api.url, api.client.api.events.$get({ query: { ...query, limit: "1" } }))
  return events[0]?.id
}

type StreamQuery = { node?: string; type?: FleetEvent["type"][]; limit?: number; after?: number }
/** Where a followed stream stands: the last event printed, and the pause the stream asked for before a reconnection. */
type Followed = { lastId: string | null; retryMs: number }

/**
 * Prints the events of the live stream. It starts with the last `limit` matching events (or every one
 * after `after`), then each new one. Once open, a lost stream (the control plane restarting) is opened
 * again after the pause it asked for (`retry`), from the last event printed (Last-Event-ID), as
 * EventSource does: what happened meanwhile is replayed, and nothing is printed twice.
 */
async function _follow(api: ReturnType<typeof apiClient>, query: StreamQuery, json = false): Promise<never> {
  const { url, client } = api
  const followed: Followed = { lastId: null, retryMs: 2000 }
  let opened = false
  let lost = false
  for (;;) {
    // An `undefined` headers option would replace the client's (its credential) rather than add none.
    const resume = followed.lastId === null ? {} : { headers: { "last-event-id": followed.lastId } }
    const res = await client.api.events.stream.$get({ query }, resume).catch((error: unknown) => {
      if (!opened) throw unreachable(url, error)
      return null
    })
    if (!opened) await announceIdentity(url)
    // A refusal ends it; a restarting control plane, unreachable, starting or still counting the lost
    // stream against the token's, is waited for.
    const status: number = res?.status ?? 0
    if (res && !res.ok && (!opened || (status !== 429 && status < 500))) throw await refusal(url, res)
    if (res?.ok) {
      if (!res.body) throw new CliError("the control plane answered without an event stream", "E_API")
      const head = HEADERS.map((h) => color.bold(h))
      if (!opened && !json) say(`${tableLine(FOLLOW_WIDTHS, head)}\n`)
      if (lost) warn(`${color.dim("the event stream is back")}\n`)
      opened = true
      lost = false
      await _printStream(res.body, json, followed)
    }
    if (!lost) warn(`${color.yellow("!")} lost the event stream; reconnecting every ${followed.retryMs / 1000} s\n`)
    lost = true
    await Bun.sleep(followed.retryMs)
  }
}

/**
 * Prints a stream's events until it ends or its connection is lost; its `error` frame is thrown, as is
 * a frame past the reader's bound or one this command cannot print: only a lost connection reconnects.
 */
async function _printStream(body: NonNullable<Response["body"]>, json: boolean, followed: Followed): Promise<void> {
  const records = readSse(body)
  for (;;) {
    let next: IteratorResult<SseRecord>
    try {
      next = await records.next()
    } catch (error) {
      if (error instanceof SseError) throw new CliError(error.message, "E_API")
      return
    }
    if (next.done) return
    const { event, data, id, retry } = next.value
    if (retry !== undefined && retry > 0) followed.retryMs = retry
    // `ready` opens the stream and comments keep it alive; `error` ends it (e.g. the token was revoked).
    if (event === "error") {
      const message = data ? String((JSON.parse(data) as { error?: unknown }).error) : "the event stream failed"
      throw new CliError(message, "E_API")
    }
    if (id === undefined) continue
    const fleetEvent = JSON.parse(data) as FleetEvent
    say(json ? `${jsonLine(fleetEvent)}\n` : `${tableLine(FOLLOW_WIDTHS, row(fleetEvent).map(field))}\n`)
    followed.lastId = id
  }
}

export default defineCommand({
  meta: { name: "events", description: "Show the fleet's events (drift, heals, enrolments), or follow them live" },
  args: {
    node: { type: "string", description: "Only this node's events" },
    type: { type: "string", description: "Only these types, comma-separated (e.g. drift.detected,heal.succeeded)" },
    limit: {
      type: "string",
      description: "How many of the latest to show (default 100, max 1000); with --after, of those after it",
    },
    after: {
      type: "string",
      description: "The events after this id, oldest first (to page through the log); with --follow, all of them",
    },
    follow: { type: "boolean", alias: "f", description: "Keep printing events as they happen" },
    json: { type: "boolean", description: "Print JSON (with --follow: one event a line)" },
  },
  async run({ args }) {
    const node = args.node === undefined ? undefined : NodeId.safeParse(args.node)
    if (node && !node.success) throw new CliError(`--node: ${node.error.issues[0]?.message}`, "E_ARG")
    const types = args.type === undefined ? undefined : Types.safeParse(args.type)
    if (types && !types.success)
      throw new CliError(`--type: expected event types among ${EventType.options.join(", ")}`, "E_ARG")
    const limit = limitFlag(args.limit, 1000)
    if (args.after !== undefined && !(/^\d+$/.test(args.after) && Number.isSafeInteger(Number(args.after))))
      throw new CliError("--after: expected an event id (a whole number, from the ID column)", "E_ARG")
    const after = args.after === undefined ? undefined : Number(args.after)
    const query = { node: node?.data, type: types?.data }
    const api = apiClient()
    const { url, client } = api
    if (!args.follow) {
      // The latest `limit`, oldest first as a log reads; from an id on, the page that follows it.
      const page = { ...query, limit: String(limit), ...(after === undefined ? { tail: true } : { after }) }
      const { events } = (await call(url, client.api.events.$get({ query: page }))) as { events: FleetEvent[] }
      // A node that is gone keeps its events, and one that is known may have none (yet): only an id
      // with neither is an error.
      const unknown = events.length === 0 && query.node ? await _unknownNode(api, query.node) : null
      if (unknown) throw new CliError(unknown, "E_NOT_FOUND")
      if (args.json) return printJson({ events })
      if (events.length === 0) {
        const filtered = query.node !== undefined || query.type !== undefined || after !== undefined
        return say(filtered ? "No events match.\n" : "No events yet.\n")
      }
      printTable(HEADERS, events.map(row))
      // A page that is not the whole log says how to see the rest (on stderr: the table stays a table).
      const first = events[0]
      const last = events.at(-1)
      if (first && last) {
        const older = after === undefined && ((await _firstEventId(api, query)) ?? first.id) < first.id
        const newer = after !== undefined && (await _firstEventId(api, { ...query, after: last.id })) !== undefined
        if (older) warn(`${color.dim(`older events: --limit N (at most 1000), or --after ID to read on from an id`)}\n`)
        if (newer) warn(`${color.dim(`more events: --after ${last.id}`)}\n`)
      }
      return
    }
    // Following a node that is not there yet is how one watches it enrol, so that is a warning only.
    if (query.node) {
      const unknown = await _unknownNode(api, query.node)
      if (unknown) warn(`${color.yellow("!")} ${unknown}; waiting for its events\n`)
    }
    await _follow(api, { ...query, ...(after === undefined ? { limit } : { after }) }, args.json)
  },
})
