// `chimera rollback --targets T [--generation GEN]`: back one generation, or to GEN, on every target
// in parallel; each reports the generation it is on now. When a control plane is configured, each
// enrolled target's desired closure becomes the one it rolled back to (as a deploy's does), so its
// agent keeps the rollback instead of healing it away.
//
// Ctrl-C starts no further target, but the ones already sent their rollback switch on the node without
// this command (rollbackScript), and an agent switches its node forward again once the rollback's hold
// lapses, a minute after the switch, unless the control plane has the rolled-back closure as desired.
// So an interrupted rollback first finishes that (INTERRUPT_GRACE_SECONDS at most), then says where
// each target was left and what to run for any whose desired closure it could not set, and exits 130.
import { defineCommand } from "citty"
import type { StorePath } from "../../protocol/ids.ts"
import { createLogger } from "../../protocol/log.ts"
import { ROLLBACK_PUBLISH_SECONDS } from "../domain/activation.ts"
import { DEFAULT_ACTIVATION_TIMEOUT_SECONDS } from "../domain/bounded-switch.ts"
import { rollback } from "../domain/rollback.ts"
import { GenerationText } from "../ops/deployment-record.ts"
import { keepRecord } from "./cli-store.ts"
import { parseFlag } from "./flags.ts"
import { finishOnInterrupt, INTERRUPT_GRACE_SECONDS, progressWaiter } from "./interrupt.ts"
import { color, field, printJson, printTable } from "./output.ts"
import { type DesiredPublisher, desiredPublisher, reportPublished } from "./publish-desired.ts"
import { ActivationTimeout, MAX_CONFIRM_SECONDS, MIN_CONFIRM_SECONDS, secondsFlag } from "./seconds-flag.ts"
import { parseSshFlags, sshArgs } from "./ssh-flags.ts"

const log = createLogger("rollback")

type Progress =
  | { phase: "waiting" }
  | { phase: "switching" }
  | { phase: "publishing" | "rolled-back"; generation: number; path: StorePath }
  | { phase: "failed"; error: string }

/** Where one target was left, in a line an operator can act on. */
function _whereLeft(target: string, p: Progress, publisher: DesiredPublisher | null): string {
  const agent = publisher?.covers(target) === true
  const forward = `its agent switches it forward again ${ROLLBACK_PUBLISH_SECONDS} s after the switch unless the control plane has it as desired`
  if (p.phase === "waiting") return `${target}: not started, unchanged`
  if (p.phase === "failed") return `${target}: failed, ${p.error}`
  if (p.phase === "switching")
    return `${target}: no answer yet; its rollback may be switching it, and then finishes there without this command. See where it is: chimera generations --targets ${target}${agent ? `; if it went back, ${forward}: chimera nodes set-desired ${target} PATH (the generation marked current)` : ""}`
  const back = `rolled back to generation ${p.generation} (${p.path})`
  const outcome = publisher?.outcome(target) ?? null
  if (!outcome) return `${target}: ${back}`
  if (outcome.kind === "published")
    return `${target}: ${back}; the control plane has it as desired, so its agent keeps it`
  if (outcome.kind === "not-enrolled")
    return `${target}: ${back}; the control plane has no node ${target} enrolled, so no agent switches it forward`
  return `${target}: ${back}, but ${outcome.why}; ${forward}: chimera nodes set-desired ${target} ${p.path}`
}

export default defineCommand({
  meta: { name: "rollback", description: "Roll nodes back to the previous (or a named) NixOS generation" },
  args: {
    generation: {
      type: "string",
      alias: "g",
      description: "Generation number to switch to (default: the previous one)",
    },
    "activation-timeout": {
      type: "string",
      description: `Seconds switch-to-configuration may run before it is stopped (the node is then left part way; ${MIN_CONFIRM_SECONDS} to ${MAX_CONFIRM_SECONDS})`,
      default: String(DEFAULT_ACTIVATION_TIMEOUT_SECONDS),
    },
    json: { type: "boolean", description: "Print JSON" },
    ...sshArgs,
  },
  async run({ args }) {
    const gen =
      args.generation === undefined ? null : Number(parseFlag(GenerationText, args.generation, "--generation"))
    const activationTimeoutSeconds = secondsFlag(ActivationTimeout, args["activation-timeout"])
    const ssh = await parseSshFlags(args)
    const exec = ssh.executor()
    const publisher = desiredPublisher()
    const progress = new Map<string, Progress>(ssh.targets.map((t) => [t.name, { phase: "waiting" }]))
    const waiter = progressWaiter()
    const set = (target: string, p: Progress) => {
      progress.set(target, p)
      waiter.changed()
    }
    const busy = () => [...progress].filter(([, p]) => p.phase === "switching" || p.phase === "publishing")
    const stop = new AbortController()
    const interrupt = finishOnInterrupt({
      seconds: INTERRUPT_GRACE_SECONDS,
      waitingFor() {
        stop.abort()
        const started = busy().map(([t]) => t)
        if (!publisher || started.length === 0) return null
        return `no further target starts; waiting for ${started.join(", ")} to answer and the control plane to have what each rolled back to as its desired closure, so its agent keeps it`
      },
      done: () => waiter.until(() => busy().length === 0),
      message: () =>
        `the rollback is not recorded. Where each target is:\n${ssh.targets
          .map((t) => `  ${field(_whereLeft(t.name, progress.get(t.name) ?? { phase: "waiting" }, publisher))}`)
          .join("\n")}`,
    })
    try {
      const o = { generation: gen, parallel: ssh.parallel, activationTimeoutSeconds }
      const results = await rollback(exec, ssh.targets, o, {
        signal: stop.signal,
        onStarted: (target) => set(target, { phase: "switching" }),
        async onRolledBack(target, path, generation) {
          set(target, { phase: "publishing", generation, path })
          await publisher?.publish(target, path)
          set(target, { phase: "rolled-back", generation, path })
        },
        onFailed: (target, error) => set(target, { phase: "failed", error }),
      })
      // Interrupted: the SIGINT handler says where each target is and exits 130.
      if (interrupt.interrupted) return await new Promise<never>(() => {})
      for (const r of results) log.info("rollback", { target: r.target, ok: r.ok, generation: r.generation, ms: r.ms })
      if (args.json) printJson({ results })
      else
        printTable(
          ["TARGET", "RESULT", "GENERATION", "SYSTEM"],
          results.map((r) => [
            r.target,
            r.ok ? color.green("rolled back") : color.red("failed"),
            String(r.generation ?? "-"),
            r.path ?? r.error ?? "",
          ]),
        )
      if (results.some((r) => !r.ok)) process.exitCode = 1
      reportPublished(publisher, Boolean(args.json))
      await keepRecord("rollback", (store) =>
        store.recordOperation(
          "rollback",
          results.map((r) => ({
            target: r.target,
            command: `rollback${gen === null ? "" : ` --generation ${gen}`}`,
            ok: r.ok,
            detail: { generation: r.generation, error: r.error },
          })),
        ),
      )
    } finally {
      interrupt.release()
      await exec.close()
    }
  },
})
