// The operations catalogue: every fleet operation an outside caller can ask for, listed once with its
// name, description, input schema, the permission it needs, its risk and whether it changes anything.
// MCP serves it as tools, the AI chat offers it to its model, and each entry says which API request it
// is, so every door reaches the same use case through the same authentication, permission check and
// audit row. A new operation added here appears in every door at once.
import { z } from "zod"
import { NodeId, StorePath } from "../../protocol/ids.ts"
import type { Permission } from "../domain/auth/roles.ts"
import { GenerationText, TargetName } from "./deployment-record.ts"

export type Risk = "low" | "medium" | "high" | "critical"

export interface ApiRequest {
  method: "GET" | "POST" | "PUT"
  path: string
  query?: Record<string, string>
  body?: unknown
}

export interface Operation<S extends z.ZodObject = z.ZodObject> {
  name: string
  title: string
  description: string
  input: S
  permission: Permission
  /** `command`: the risk is the command's own, from the command registry. */
  risk: Risk | "command"
  mutates: boolean
  /** May undo or destroy what runs (deploys, rollbacks, commands); false for additive or read-only. */
  destructive: boolean
  request(input: z.output<S>): ApiRequest
}

const op = <S extends z.ZodObject>(o: Operation<S>): Operation => o as unknown as Operation

const targets = z
  .array(TargetName)
  .min(1)
  .max(1000)
  .describe("Nodes: names from [fleet.nodes], enrolled node ids, or @tag")
const configPath = z
  .string()
  .min(1)
  .max(4096)
  .describe("Path of the Nix file to build, on the control plane's host (admin only)")

export const OPERATIONS: Operation[] = [
  op({
    name: "list_nodes",
    title: "List nodes",
    description:
      "Every enrolled node with its status (healthy, drifted, healing, heal-failed, unreachable…) and closure hashes.",
    input: z.object({}).strict(),
    permission: "fleet:read",
    risk: "low",
    mutates: false,
    destructive: false,
    request: () => ({ method: "GET", path: "/api/nodes" }),
  }),
  op({
    name: "get_node",
    title: "Get a node",
    description:
      "One enrolled node: desired, profile, current and booted closures, reboot needed, health, last heartbeat.",
    input: z.object({ node_id: NodeId.describe("The enrolled node's id") }).strict(),
    permission: "fleet:read",
    risk: "low",
    mutates: false,
    destructive: false,
    request: (i) => ({ method: "GET", path: `/api/nodes/${encodeURIComponent(i.node_id)}` }),
  }),
  op({
    name: "list_events",
    title: "List fleet events",
    description:
      "The latest fleet events (drift detected, heals, deployments, reachability), newest last; filter by node and type.",
    input: z
      .object({
        node_id: NodeId.optional().describe("Only this node's events"),
        type: z.string().max(400).optional().describe("Comma-separated event types, e.g. drift.detected,heal.failed"),
        limit: z.number().int().min(1).max(1000).optional().describe("How many of the latest (default 100)"),
      })
      .strict(),
    permission: "fleet:read",
    risk: "low",
    mutates: false,
    destructive: false,
    request: (i) => ({
      method: "GET",
      path: "/api/events",
      query: {
        tail: "true",
        ...(i.node_id ? { node: i.node_id } : {}),
        ...(i.type ? { type: i.type } : {}),
        ...(i.limit ? { limit: String(i.limit) } : {}),
      },
    }),
  }),
  op({
    name: "list_deployments",
    title: "List deployments",
    description: "Recorded deployments and heals, newest first.",
    input: z.object({ limit: z.number().int().min(1).max(1000).optional() }).strict(),
    permission: "fleet:read",
    risk: "low",
    mutates: false,
    destructive: false,
    request: (i) => ({
      method: "GET",
      path: "/api/deployments",
      query: { ...(i.limit ? { limit: String(i.limit) } : {}) },
    }),
  }),
  op({
    name: "check_congruence",
    title: "Check congruence",
    description:
      "Is each target running the expected closure? Enrolled nodes answer from what their agent reports; others are checked over SSH. Without config_path, each node is compared with its desired closure.",
    input: z.object({ targets, config_path: configPath.optional() }).strict(),
    permission: "fleet:read",
    risk: "low",
    mutates: false,
    destructive: false,
    request: (i) => ({ method: "POST", path: "/api/congruence", body: i }),
  }),
  op({
    name: "set_desired_closure",
    title: "Set a node's desired closure",
    description: "Make a store path the closure an enrolled node must run; its agent activates it and keeps it.",
    input: z.object({ node_id: NodeId, closure: StorePath.describe("A /nix/store path of a NixOS system") }).strict(),
    permission: "fleet:deploy",
    risk: "medium",
    mutates: true,
    destructive: true,
    request: (i) => ({
      method: "PUT",
      path: `/api/nodes/${encodeURIComponent(i.node_id)}/desired`,
      body: { closure: i.closure },
    }),
  }),
  op({
    name: "run_command",
    title: "Run a command on nodes",
    description:
      "Run a shell command on enrolled nodes through their agents and return each node's output. Its risk comes from the command registry: high-risk commands need an admin and a human's approval. Once sent, a command runs on each node until it ends or its timeout (then its process group is killed). Cancelling this call cancels the command: a node running it stops it (SIGTERM, then SIGKILL after 3 s) and answers `cancelled` with its output so far, and a node that had not fetched it never runs it. An agent too old to know cancels runs it to its end or its timeout, so still give a long-running command a timeout that fits.",
    input: z
      .object({
        command: z.string().min(1).max(16_384),
        nodes: z.array(NodeId).min(1).max(1000),
        timeout: z.number().int().min(1).max(3600).optional().describe("Seconds (default 30)"),
      })
      .strict(),
    permission: "commands:run",
    risk: "command",
    mutates: true,
    destructive: true,
    request: (i) => ({ method: "POST", path: "/api/fleet/run", body: i }),
  }),
  op({
    name: "execute_deployment",
    title: "Deploy a configuration",
    description:
      "Build a Nix configuration and deploy it to the targets in parallel with magic rollback: activation, optional command in nix-shell in a tmux session, health checks, confirmation. Waits for the outcome.",
    input: z
      .object({
        config_path: configPath,
        command: z.string().max(16_384).optional().describe("Command to run in nix-shell in the node's tmux session"),
        session_name: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/)
          .optional()
          .describe("Tmux session name (default chimera)"),
        targets,
      })
      .strict(),
    permission: "fleet:deploy",
    risk: "high",
    mutates: true,
    destructive: true,
    request: (i) => ({
      method: "POST",
      path: "/api/deployments",
      body: {
        targets: i.targets,
        config_path: i.config_path,
        ...(i.command ? { command: i.command } : {}),
        session: i.session_name ?? "chimera",
      },
    }),
  }),
  op({
    name: "rollback_deployment",
    title: "Roll back",
    description:
      "Roll the targets' system profile back one generation (or to a given one) and activate it; enrolled nodes keep it as their desired closure.",
    input: z
      .object({
        targets,
        generation: GenerationText.optional().describe("Generation number"),
      })
      .strict(),
    permission: "fleet:deploy",
    risk: "high",
    mutates: true,
    destructive: true,
    request: (i) => ({
      method: "POST",
      path: "/api/rollbacks",
      body: { targets: i.targets, ...(i.generation ? { generation: Number(i.generation) } : {}) },
    }),
  }),
]

export const operationNamed = (name: string) => OPERATIONS.find((o) => o.name === name)
