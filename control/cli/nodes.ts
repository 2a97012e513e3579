// `chimera nodes list|show|join-token|set-desired|run|revoke|remove`: the fleet as the control plane knows it, and
// one command run on many enrolled nodes through their agents.
import { randomUUID } from "node:crypto"
import { realpathSync } from "node:fs"
import { defineCommand } from "citty"
import { z } from "zod"
import { MAX_RUN_TIMEOUT_SECONDS } from "../../protocol/agent.ts"
import { EnrolledNodeId, NodeId, StorePath } from "../../protocol/ids.ts"
import type { CommandResults, NodeCommandResult } from "../domain/command-results.ts"
import type { NodeView } from "../domain/node.ts"
import { apiClient, call, controlUrl, unreachable } from "./client.ts"
import { CliError } from "./errors.ts"
import { commandWords, parseFlag } from "./flags.ts"
import { spinner } from "./interrupt.ts"
import { ago, color, field, prefixed, printFields, printJson, printTable, say, statusText, warn } from "./output.ts"
import { cancelOnInterrupt } from "./run-cancel.ts"
import { noSuchNode } from "./unknown-node.ts"

const json = { type: "boolean", description: "Print JSON" } as const
const TtlSeconds = z
  .string()
  .regex(/^\d+$/, "expected a whole number of seconds")
  .transform(Number)
  .pipe(z.number().min(60, "expected at least 60 seconds").max(604_800, "expected at most 604800 seconds (7 days)"))
const short = (hash: string | null) => (hash ? hash.slice(0, 12) : "-")

/** Awaits a request about node `id`; a 404 names the nearest known id instead of only "not found". */
async function _aboutNode<T = NodeView>(
  api: ReturnType<typeof apiClient>,
  id: string,
  request: Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>,
): Promise<T> {
  const res = await request.catch((error: unknown) => {
    throw unreachable(api.url, error)
  })
  if (res.status === 404) throw new CliError(await noSuchNode(api, id), "E_NOT_FOUND")
  return (await call(api.url, Promise.resolve(res))) as T
}

/** The node ids a 404 from POST /api/fleet/run names in `detail.unknown` (none for another 404). */
async function _unknownNodes(res: { clone(): { json(): Promise<unknown> } }): Promise<string[]> {
  const body = (await res
    .clone()
    .json()
    .catch(() => null)) as { detail?: { unknown?: unknown } } | null
  const unknown = body?.detail?.unknown
  return Array.isArray(unknown) ? unknown.filter((id): id is string => typeof id === "string") : []
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
      say(`No nodes enrolled yet. Create a join token with ${color.bold("chimera nodes join-token")}.\n`)
      return
    }
    printTable(
      ["NODE", "STATUS", "DESIRED", "CURRENT", "HEARTBEAT", "REBOOT"],
      nodes.map((n) => [
        n.id,
        n.revoked ? statusText("revoked") : statusText(n.status),
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
    const api = apiClient()
    const node = await _aboutNode(api, id, api.client.api.nodes[":id"].$get({ param: { id } }))
    if (args.json) return printJson(node)
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`
    printFields([
      ["node", node.id],
      [
        "status",
        node.revoked
          ? `${statusText("revoked")} ${color.dim(`(credential revoked; enrol it again with a join token: chimera nodes join-token --node ${node.id})`)}`
          : statusText(node.status),
      ],
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
    const nodeId = args.node === undefined ? undefined : parseFlag(EnrolledNodeId, args.node, "--node")
    const { url, client } = apiClient()
    const token = (await call(url, client.api.nodes["join-tokens"].$post({ json: { ttlSeconds, nodeId } }))) as {
      token: string
      expiresAt: string
    }
    if (args.json) return printJson(token)
    say(`${token.token}\n`)
    // In the environment, not on the command line: every local user can read a process's argv (ps).
    warn(
      `${color.dim(`single use, expires ${token.expiresAt}. On the node:`)}\n  CHIMERA_JOIN_TOKEN=${token.token} chimera-agent --node-id ${nodeId ?? "NODE"} --control-url ${controlUrl()}\n${color.dim("or --join-token-file PATH (- for stdin); on NixOS services.chimera-agent.joinTokenFile")}\n`,
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
    const api = apiClient()
    const node = await _aboutNode(
      api,
      id,
      api.client.api.nodes[":id"].desired.$put({ param: { id }, json: { closure } }),
    )
    if (args.json) return printJson(node)
    say(
      `${node.id}: desired ${closure}\n${color.dim(`status ${node.status}; the agent activates it on its next command poll`)}\n`,
    )
  },
})

const revoke = defineCommand({
  meta: {
    name: "revoke",
    description: "Revoke a node's credential: its agent is refused from its next request (enrol it again to undo)",
  },
  args: { id: { type: "positional", description: "Node id", required: true }, json },
  async run({ args }) {
    const id = parseFlag(NodeId, args.id, "ID")
    const api = apiClient()
    const result = await _aboutNode<{ nodeId: string; revoked: boolean; alreadyRevoked: boolean }>(
      api,
      id,
      api.client.api.nodes[":id"].revoke.$post({ param: { id } }),
    )
    if (args.json) return printJson(result)
    const what = result.alreadyRevoked
      ? `${id} was already revoked: its agent stays refused`
      : `Revoked ${id}: its agent is refused from its next request`
    say(
      `${what}\n${color.dim(`to enrol it again: chimera nodes join-token --node ${id}, then restart its agent with that token`)}\n`,
    )
  },
})

const remove = defineCommand({
  meta: {
    name: "remove",
    description:
      "Remove a retired node from the fleet: its credential revoked, its incidents resolved, its history kept",
  },
  args: { id: { type: "positional", description: "Node id", required: true }, json },
  async run({ args }) {
    const id = parseFlag(NodeId, args.id, "ID")
    const api = apiClient()
    const result = await _aboutNode<{ nodeId: string; removed: boolean }>(
      api,
      id,
      api.client.api.nodes[":id"].$delete({ param: { id } }),
    )
    if (args.json) return printJson(result)
    say(
      `Removed ${id} from the fleet: its agent is refused, its open incidents are resolved, its events are kept\n${color.dim(`a machine enrols under the name again with a token from: chimera nodes join-token --node ${id}`)}\n`,
    )
  },
})

const RunTimeout = z
  .string()
  .regex(/^\d+$/, "expected a whole number of seconds")
  .transform(Number)
  .pipe(
    z
      .number()
      .min(1, "expected at least 1 second")
      .max(MAX_RUN_TIMEOUT_SECONDS, `expected at most ${MAX_RUN_TIMEOUT_SECONDS} seconds`),
  )
const NodeList = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((id) => id.trim())
      .filter(Boolean),
  )
  .pipe(z.array(NodeId).min(1, "expected node ids separated by commas, e.g. web-1,web-2"))

function printRelayed(r: NodeCommandResult, width: number): void {
  const name = color.bold(r.node.padEnd(width))
  say(prefixed(name, r.stdout, color.dim("|")))
  if (r.status !== "offline") warn(prefixed(name, r.stderr, color.yellow("!")))
  const why = {
    ok: null,
    failed: `exited ${r.exit_code ?? "without a status"}`,
    timeout: "timed out",
    offline: `offline: ${field(r.stderr)}`,
    cancelled: "cancelled",
  }[r.status]
  if (why) warn(`${name} ${color.red("✗")} ${why}\n`)
}

const runOnNodes = defineCommand({
  meta: { name: "run", description: "Run one command on enrolled nodes through their agents (no SSH)" },
  args: {
    command: { type: "positional", description: "The command (after --), run by /bin/sh as root", required: false },
    nodes: { type: "string", description: "Node ids, separated by commas" },
    all: { type: "boolean", description: "Every enrolled node" },
    timeout: { type: "string", description: "Seconds each node may take (default 30)" },
    json,
  },
  async run({ args }) {
    const command = commandWords(args._)
    if (command === "") throw new CliError("no command given: chimera nodes run --all -- COMMAND", "E_ARG")
    if ((args.nodes === undefined) === (args.all !== true))
      throw new CliError("name the nodes (--nodes web-1,web-2) or pass --all, one of the two", "E_ARG")
    const nodes = args.nodes === undefined ? undefined : parseFlag(NodeList, args.nodes, "--nodes")
    const timeout = args.timeout === undefined ? 30 : parseFlag(RunTimeout, args.timeout, "--timeout")
    const { url, client } = apiClient()
    const spin = args.json ? null : spinner(process.stderr)
    spin?.start(`running on ${nodes ? `${nodes.length} node${nodes.length === 1 ? "" : "s"}` : "every node"}`)
    const runId = randomUUID()
    const { release } = cancelOnInterrupt(url, client, runId)
    let answer: CommandResults
    try {
      const request = client.api.fleet.run.$post({
        json: nodes ? { command, nodes, timeout, run_id: runId } : { command, all: true, timeout, run_id: runId },
      })
      const res = await request.catch((error: unknown) => {
        throw unreachable(url, error)
      })
      // Nodes the control plane does not know: each named as `nodes show` names it (the nearest
      // enrolled id, or a [fleet.nodes] name whose agent has not enrolled, with how to enrol it).
      if (res.status === 404 && nodes) {
        const unknown = await _unknownNodes(res)
        if (unknown.length > 0) {
          const api = { url, client }
          const said = await Promise.all(unknown.slice(0, 5).map((id) => noSuchNode(api, id)))
          const more = unknown.length > 5 ? `; and ${unknown.length - 5} more unknown` : ""
          throw new CliError(`${said.join("; ")}${more}`, "E_NOT_FOUND")
        }
      }
      answer = (await call(url, Promise.resolve(res))) as CommandResults
    } finally {
      release()
      spin?.clear()
    }
    if (args.json) printJson(answer)
    else {
      const width = Math.max(0, ...answer.results.map((r) => r.node.length))
      for (const r of answer.results) printRelayed(r, width)
      const { ok, failed, timeout: late, offline, cancelled } = answer.summary
      const bad = [
        failed && `${failed} failed`,
        late && `${late} timed out`,
        offline && `${offline} offline`,
        cancelled && `${cancelled} cancelled`,
      ].filter(Boolean)
      warn(
        `${answer.results.length} node${answer.results.length === 1 ? "" : "s"}: ${ok} ok${bad.length ? `, ${color.red(bad.join(", "))}` : ""} in ${answer.duration.toFixed(2)} s\n`,
      )
    }
    if (answer.summary.ok !== answer.results.length) process.exitCode = 1
  },
})

export default defineCommand({
  meta: {
    name: "nodes",
    description: "Enrolled nodes: list, show, join tokens, desired closures, run a command, revoke, remove",
  },
  subCommands: { list, show, "join-token": joinToken, "set-desired": setDesired, run: runOnNodes, revoke, remove },
})
