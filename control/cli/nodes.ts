// `chimera nodes list|show|join-token|set-desired`: the fleet as the control plane knows it.
import { realpathSync } from "node:fs"
import { defineCommand } from "citty"
import { z } from "zod"
import { NodeId, StorePath } from "../../protocol/ids.ts"
import type { NodeView } from "../domain/node.ts"
import { apiClient, call, controlUrl } from "./client.ts"
import { CliError } from "./errors.ts"
import { ago, color, printFields, printJson, printTable, statusText } from "./output.ts"

const json = { type: "boolean", description: "Print JSON" } as const
const TtlSeconds = z
  .string()
  .regex(/^\d+$/, "expected a whole number of seconds")
  .transform(Number)
  .pipe(z.number().min(60, "expected at least 60 seconds").max(604_800, "expected at most 604800 seconds (7 days)"))
const short = (hash: string | null) => (hash ? hash.slice(0, 12) : "-")

function parseFlag<S extends z.ZodType>(schema: S, value: unknown, flag: string): z.output<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new CliError(`${flag}: ${parsed.error.issues[0]?.message ?? "invalid value"}`, "E_ARG")
  return parsed.data
}

/** A store path, or a local link to one (such as nix-build's ./result). */
function resolveClosure(arg: string): string {
  if (arg.startsWith("/nix/store/")) return parseFlag(StorePath, arg, "CLOSURE")
  try {
    return parseFlag(StorePath, realpathSync(arg), "CLOSURE")
  } catch (error) {
    if (error instanceof CliError) throw error
    throw new CliError(`CLOSURE: ${arg} is neither a Nix store path nor a link to one`, "E_ARG")
  }
}

const list = defineCommand({
  meta: { name: "list", description: "List enrolled nodes and whether each runs its desired closure" },
  args: { json },
  async run({ args }) {
    const { url, client } = apiClient()
    const { nodes } = (await call(url, client.api.nodes.$get())) as { nodes: NodeView[] }
    if (args.json) return printJson({ nodes })
    if (nodes.length === 0) {
      process.stdout.write(
        `No nodes enrolled yet. Create a join token with ${color.bold("chimera nodes join-token")}.\n`,
      )
      return
    }
    printTable(
      ["NODE", "STATUS", "DESIRED", "CURRENT", "HEARTBEAT", "REBOOT"],
      nodes.map((n) => [
        n.id,
        statusText(n.status),
        short(n.desiredHash),
        short(n.currentHash),
        ago(n.lastHeartbeat),
        n.rebootRequired ? "needed" : "",
      ]),
    )
  },
})

const show = defineCommand({
  meta: { name: "show", description: "Show one node: status, system links, health" },
  args: { id: { type: "positional", description: "Node id", required: true }, json },
  async run({ args }) {
    const id = parseFlag(NodeId, args.id, "ID")
    const { url, client } = apiClient()
    const node = (await call(url, client.api.nodes[":id"].$get({ param: { id } }))) as NodeView
    if (args.json) return printJson(node)
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`
    printFields([
      ["node", node.id],
      ["status", statusText(node.status)],
      ["desired", node.desiredPath ?? "-"],
      ["profile", node.profilePath ?? "-"],
      ["current", node.currentPath ?? "-"],
      ["booted", `${node.bootedPath ?? "-"}${node.rebootRequired ? color.yellow("  (reboot needed)") : ""}`],
      ["heartbeat", `${ago(node.lastHeartbeat)} (every ${node.heartbeatIntervalSeconds}s)`],
      ["agent", node.agentVersion ?? "-"],
      ...(node.health
        ? ([
            ["load", node.health.load.map((l) => l.toFixed(2)).join(" ")],
            ["memory", `${gib(node.health.memory.availableBytes)} free of ${gib(node.health.memory.totalBytes)}`],
            [
              "disk",
              `${gib(node.health.disk.freeBytes)} free of ${gib(node.health.disk.totalBytes)} on ${node.health.disk.path}`,
            ],
          ] as [string, string][])
        : []),
    ])
  },
})

const joinToken = defineCommand({
  meta: { name: "join-token", description: "Create a single-use token that enrols one agent" },
  args: {
    ttl: { type: "string", description: "Seconds the token stays valid (default 1800)" },
    node: { type: "string", description: "Only this node id may use it" },
    json,
  },
  async run({ args }) {
    const ttlSeconds = args.ttl === undefined ? undefined : parseFlag(TtlSeconds, args.ttl, "--ttl")
    const nodeId = args.node === undefined ? undefined : parseFlag(NodeId, args.node, "--node")
    const { url, client } = apiClient()
    const token = (await call(url, client.api.nodes["join-tokens"].$post({ json: { ttlSeconds, nodeId } }))) as {
      token: string
      expiresAt: string
    }
    if (args.json) return printJson(token)
    process.stdout.write(`${token.token}\n`)
    process.stderr.write(
      `${color.dim(`single use, expires ${token.expiresAt}. On the node:`)}\n  chimera-agent --node-id ${nodeId ?? "NODE"} --control-url ${controlUrl()} --join-token ${token.token}\n`,
    )
  },
})

const setDesired = defineCommand({
  meta: { name: "set-desired", description: "Set the closure a node must run; its agent activates it" },
  args: {
    id: { type: "positional", description: "Node id", required: true },
    closure: {
      type: "positional",
      description: "Store path of the system closure (or a link to it, e.g. ./result)",
      required: true,
    },
    json,
  },
  async run({ args }) {
    const id = parseFlag(NodeId, args.id, "ID")
    const closure = resolveClosure(String(args.closure))
    const { url, client } = apiClient()
    const node = (await call(
      url,
      client.api.nodes[":id"].desired.$put({ param: { id }, json: { closure } }),
    )) as NodeView
    if (args.json) return printJson(node)
    process.stdout.write(
      `${node.id}: desired ${closure}\n${color.dim(`status ${node.status}; the agent activates it on its next command poll`)}\n`,
    )
  },
})

export default defineCommand({
  meta: { name: "nodes", description: "Enrolled nodes: list, show, join tokens, desired closures" },
  subCommands: { list, show, "join-token": joinToken, "set-desired": setDesired },
})
