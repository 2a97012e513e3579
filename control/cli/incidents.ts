// `chimera incidents [--status open|resolved] [--node N] [--json]`, `chimera incidents show ID` and
// `chimera incidents resolve ID [--note TEXT]`: the incidents the fleet's events opened, with their
// tickets; one incident's timeline and deliveries (each notification or ticket change: its channel,
// status, attempts and last error); and closing one by hand, which its channels hear of.
import { defineCommand } from "citty"
import { z } from "zod"
import type { Delivery, Incident, TimelineEntry } from "../domain/incident-model.ts"
import { apiClient, call } from "./client.ts"
import { CliError } from "./errors.ts"
import { limitFlag, parseFlag } from "./flags.ts"
import { ago, color, printFields, printJson, printTable, say } from "./output.ts"

type Listed = Incident & { undelivered: number; failed: number; delivered: number }
interface Detail {
  incident: Incident
  timeline: TimelineEntry[]
  deliveries: Delivery[]
}

const Status = z.enum(["open", "resolved"], { error: 'expected "open" or "resolved"' })
const Id = z.uuid({
  error: "expected an incident id (a UUID as `chimera incidents` lists it, or at least its first 4 characters)",
})

const severityText = (s: string) => (s === "critical" ? color.red(s) : s === "warning" ? color.yellow(s) : s)
const statusText = (i: Incident) => (i.status === "open" ? color.red("open") : color.green("resolved"))
const ticketOf = (i: Incident) => i.ticketLabel ?? i.ticketId ?? "-"
const deliveryText = (d: Delivery) =>
  d.status === "delivered"
    ? color.green(d.status)
    : d.status === "failed"
      ? color.red(d.status)
      : color.yellow(d.status)

async function list(args: { status?: string; node?: string; limit?: string; json?: boolean }) {
  const status = args.status === undefined ? undefined : parseFlag(Status, args.status, "--status")
  const limit = String(limitFlag(args.limit, 1000))
  const { url, client } = apiClient()
  const query = { status, node: args.node, limit }
  const { incidents } = (await call(url, client.api.incidents.$get({ query }))) as { incidents: Listed[] }
  if (args.json) return printJson({ incidents })
  if (incidents.length === 0) return say("No incidents.\n")
  printTable(
    ["ID", "STATUS", "SEVERITY", "NODE", "PROBLEM", "OPENED", "TICKET", "DELIVERIES"],
    incidents.map((i) => [
      i.id,
      statusText(i),
      severityText(i.severity),
      i.nodeId,
      i.problem,
      ago(i.openedAt),
      ticketOf(i),
      i.failed > 0
        ? color.red(`${i.failed} failed`)
        : i.undelivered > 0
          ? color.yellow(`${i.undelivered} pending`)
          : i.delivered > 0
            ? "ok"
            : "-", // no channel configured, or none hears of this severity: "ok" would claim a delivery
    ]),
  )
}

/**
 * The incident an ID names: a whole UUID, or its start (as with git's commits) when one incident of
 * the newest 1,000 begins with it.
 */
async function incidentId(raw: unknown): Promise<string> {
  if (typeof raw === "string" && /^[0-9a-f-]{4,35}$/i.test(raw) && !Id.safeParse(raw).success) {
    const { url, client } = apiClient()
    const { incidents } = (await call(url, client.api.incidents.$get({ query: { limit: "1000" } }))) as {
      incidents: Listed[]
    }
    const found = incidents.filter((i) => i.id.startsWith(raw.toLowerCase())).map((i) => i.id)
    if (found.length === 1) return found[0] as string
    // None found is an answer about the fleet, as a whole id the API does not know (exit 1); more than
    // one is the command line's to fix (the usage status).
    if (found.length === 0)
      throw new CliError(
        `ID: no incident's id starts with ${raw} (\`chimera incidents --status resolved\` lists resolved ones too)`,
        "E_NOT_FOUND",
      )
    throw new CliError(
      `ID: ${found.length} incidents' ids start with ${raw} (${found.slice(0, 3).join(", ")}…): give more of it`,
      "E_ARG",
    )
  }
  return parseFlag(Id, raw, "ID")
}

async function show(rawId: unknown, json: boolean) {
  const id = await incidentId(rawId)
  const { url, client } = apiClient()
  const detail = (await call(url, client.api.incidents[":id"].$get({ param: { id } }))) as Detail
  if (json) return printJson(detail)
  const i = detail.incident
  printFields([
    ["incident", i.id],
    ["title", i.title],
    ["status", `${i.status}${i.resolvedAt ? ` at ${i.resolvedAt}` : ""}`],
    ["severity", i.severity],
    ["node", i.nodeId],
    ["problem", i.problem],
    ["message", i.message],
    ["seen", `${i.occurrences} time${i.occurrences === 1 ? "" : "s"}, opened ${i.openedAt}`],
    ["ticket", ticketOf(i)],
    ["desired", i.closures.desired ?? "-"],
    ["current", i.closures.current ?? "-"],
  ])
  say(`\n${color.bold("Timeline")}\n`)
  printTable(
    ["AT", "STEP", "MESSAGE"],
    detail.timeline.map((t) => [t.at, t.step, t.message]),
  )
  say(`\n${color.bold("Deliveries")}\n`)
  if (detail.deliveries.length === 0) {
    // Updates go only to the channels told of the opening, so one configured later hears the next incident.
    say(
      `none: no channel took its opening (none configured then, or below a channel's [incidents] *_min_severity), and its updates go only to channels that did; ${color.bold("chimera notify test")} shows the configured ones\n`,
    )
    return
  }
  printTable(
    ["CHANNEL", "STEP", "STATUS", "ATTEMPTS", "LAST ERROR"],
    detail.deliveries.map((d) => [d.channel, d.step, deliveryText(d), String(d.attempts), d.lastError ?? ""]),
  )
}

async function resolve(rawId: unknown, note: string | undefined, json: boolean) {
  const id = await incidentId(rawId)
  const { url, client } = apiClient()
  const detail = (await call(
    url,
    client.api.incidents[":id"].resolve.$post({ param: { id }, json: note === undefined ? {} : { note } }),
  )) as Detail
  if (json) return printJson(detail)
  say(`${detail.incident.id} ${color.green("resolved")}: ${detail.timeline.at(-1)?.message ?? ""}\n`)
}

export default defineCommand({
  meta: {
    name: "incidents",
    description:
      "Incidents opened from the fleet's events: list them, show one with its timeline, tickets and deliveries, resolve one",
  },
  args: {
    action: {
      type: "positional",
      description: "show ID to see one incident, resolve ID to close one by hand",
      required: false,
    },
    id: { type: "positional", description: "An incident id", required: false },
    status: { type: "string", description: "Only open or only resolved incidents" },
    node: { type: "string", description: "Only this node's incidents" },
    limit: { type: "string", description: "At most this many (default 100, max 1000)" },
    note: { type: "string", description: "With resolve: why, for the timeline and the channels" },
    json: { type: "boolean", description: "Print JSON" },
  },
  async run({ args }) {
    if (args.action === undefined || args.action === "list") return list(args)
    if (args.action === "show") {
      if (args.id === undefined) throw new CliError("show: give the incident's ID (chimera incidents show ID)", "E_ARG")
      return show(args.id, args.json === true)
    }
    if (args.action === "resolve") {
      if (args.id === undefined)
        throw new CliError("resolve: give the incident's ID (chimera incidents resolve ID --note TEXT)", "E_ARG")
      return resolve(args.id, args.note, args.json === true)
    }
    throw new CliError(
      `unknown action ${JSON.stringify(args.action)}: use \`chimera incidents\`, \`chimera incidents show ID\` or \`chimera incidents resolve ID\``,
      "E_ARG",
    )
  },
})
