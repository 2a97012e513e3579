// Whole-second flags shared by deploy, rollback and watch. The confirm timeout's bounds matter beyond the flag:
// the deploy hold an agent honours lasts at most MAX_CONFIRM_SECONDS plus a minute (protocol/agent.ts).
import { z } from "zod"
import { MAX_DEPLOY_HOLD_SECONDS } from "../../protocol/agent.ts"
import { CliError } from "./errors.ts"

export const MIN_CONFIRM_SECONDS = 5
export const MAX_CONFIRM_SECONDS = MAX_DEPLOY_HOLD_SECONDS - 60

export const Seconds = (flag: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${flag}: expected a whole number of seconds`)
    .transform(Number)
    .pipe(z.number().min(min, `${flag}: at least ${min}`).max(max, `${flag}: at most ${max}`))

export const ConfirmTimeout = Seconds("--confirm-timeout", MIN_CONFIRM_SECONDS, MAX_CONFIRM_SECONDS)
/** A switch stopped at once would be no deploy: at least as long as the shortest confirm window. */
export const ActivationTimeout = Seconds("--activation-timeout", MIN_CONFIRM_SECONDS, MAX_CONFIRM_SECONDS)

/** A Seconds flag's value, or a usage error in the flag's own words (they name it). */
export function secondsFlag(schema: ReturnType<typeof Seconds>, value: unknown): number {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new CliError(parsed.error.issues[0]?.message ?? "invalid seconds", "E_ARG")
  return parsed.data
}
