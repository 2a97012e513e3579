// The tools the chat's model may call: every operation of the catalogue (control/ops/catalogue.ts),
// with its JSON Schema, plus two reads of the command registry. A read runs at once as the user the
// turn acts for; an operation that changes anything, or a build on the control plane's host, never
// runs when the model calls it: it becomes a question (questions.ts), and `mayApprove` says whether a given role may say yes to it, by the same
// permission and command-risk rule the API applies.
import { z } from "zod"
import { redactStrings } from "../../protocol/log.ts"
import { can, leastRoleFor, type Role } from "../domain/auth/roles.ts"
import { assessCommand } from "../domain/command-assessment.ts"
import { checkCommandRisk } from "../domain/command-risk.ts"
import { forbidden } from "../domain/errors.ts"
import { type ApiRequest, OPERATIONS, type Operation } from "../ops/catalogue.ts"
import type { LlmTool } from "./llm-port.ts"

export interface ChatTool {
  spec: LlmTool
  mutates: boolean
  input: z.ZodObject
  /** An API request (run as the acting user), or a value computed here without one. */
  run(args: Record<string, unknown>): { request: ApiRequest } | { value: unknown }
  op: Operation | null
}

const fromOperation = (op: Operation): ChatTool => ({
  spec: { name: op.name, description: op.description, parameters: z.toJSONSchema(op.input) as Record<string, unknown> },
  mutates: op.mutates,
  input: op.input,
  run: (args) => ({ request: op.request(args) }),
  op,
})

const registryInput = z.object({}).strict()
const assessInput = z.object({ command: z.string().min(1).max(16_384).describe("A shell command line") }).strict()

const EXTRA: ChatTool[] = [
  {
    spec: {
      name: "command_registry",
      description:
        "The command registry: the programs commands may use, their categories and risk levels (low, medium, high).",
      parameters: z.toJSONSchema(registryInput) as Record<string, unknown>,
    },
    mutates: false,
    input: registryInput,
    run: () => ({ request: { method: "GET", path: "/api/registry" } }),
    op: null,
  },
  {
    spec: {
      name: "assess_command_risk",
      description:
        "The risk level the command registry gives a command line, why, and the permission running it needs.",
      parameters: z.toJSONSchema(assessInput) as Record<string, unknown>,
    },
    mutates: false,
    input: assessInput,
    run: (args) => {
      const a = assessCommand(String(args.command))
      const needs = a.risk === "high" ? "commands:run-high" : "commands:run"
      return { value: { risk: a.risk, reasons: a.reasons, needs, leastRole: leastRoleFor(needs) } }
    },
    op: null,
  },
]

export const CHAT_TOOLS: ReadonlyMap<string, ChatTool> = new Map(
  [...OPERATIONS.map(fromOperation), ...EXTRA].map((t) => [t.spec.name, t]),
)

export const toolSpecs = (): LlmTool[] => [...CHAT_TOOLS.values()].map((t) => t.spec)

/**
 * Whether a call waits for a human: an operation that changes something, or any call naming a
 * `config_path`, which builds that Nix file on the control plane's host (its builders run code there,
 * as the control plane's user): a read only by name, which a prompt injected through fleet data must
 * not start unasked.
 */
export const needsApproval = (tool: ChatTool, args: Record<string, unknown>): boolean =>
  tool.mutates || args.config_path !== undefined

/** Whether the question for `args` would show its approver less than what runs: the secret net hides part of it. */
export const hiddenFromApprover = (args: Record<string, unknown>): boolean =>
  JSON.stringify(redactStrings(args)) !== JSON.stringify(args)

/** Throws the 403 that says why `role` may not approve this action; returns when it may. */
export function mayApprove(role: Role, tool: ChatTool, args: Record<string, unknown>): void {
  const op = tool.op
  if (!op) return
  if (!can(role, op.permission))
    throw forbidden(
      `approving ${op.name} needs the ${op.permission} permission (role ${leastRoleFor(op.permission)} or above); you are ${role}`,
    )
  if (args.config_path !== undefined && !can(role, "cli:full_access"))
    throw forbidden(
      `approving a build of ${String(args.config_path)} on the control plane's host needs the admin role; you are ${role}`,
    )
  if (op.risk === "command" && typeof args.command === "string") checkCommandRisk(role, args.command)
}

/** The question's words for an action: what it asks, and the exact thing that would run. */
export function describeAction(tool: ChatTool, args: Record<string, unknown>): { text: string; context: string } {
  const list = (v: unknown) => (Array.isArray(v) ? v.map(String).join(", ") : String(v))
  switch (tool.spec.name) {
    case "run_command": {
      const risk = assessCommand(String(args.command)).risk
      return { text: `Run this ${risk}-risk command on ${list(args.nodes)}?`, context: String(args.command) }
    }
    case "set_desired_closure":
      return {
        text: `Make this the desired closure of node ${String(args.node_id)}?`,
        context: `${String(args.node_id)} → ${String(args.closure)}`,
      }
    case "check_congruence":
      return {
        text: `Build ${String(args.config_path)} on the control plane's host and compare it with ${list(args.targets)}?`,
        context: `build ${String(args.config_path)}, compare with ${list(args.targets)}`,
      }
    case "execute_deployment":
      return {
        text: `Deploy to ${list(args.targets)}?`,
        context: `deploy ${String(args.config_path)} to ${list(args.targets)}${args.command ? `, then run: ${String(args.command)}` : ""}`,
      }
    case "rollback_deployment":
      return {
        text: `Roll back ${list(args.targets)}?`,
        context: `roll back ${list(args.targets)} to ${args.generation ? `generation ${String(args.generation)}` : "the previous generation"}`,
      }
    default:
      return { text: `Run ${tool.spec.name}?`, context: `${tool.spec.name} ${JSON.stringify(args)}` }
  }
}
