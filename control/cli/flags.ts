// Flag values checked at the edge, named as they were typed: `--limit: expected …`, not the API's
// `query.limit`, and before any request is made.
import type { z } from "zod"
import { CliError } from "./errors.ts"

/** `value` parsed with `schema`; its first problem is the error, under the flag's name. */
export function parseFlag<S extends z.ZodType>(schema: S, value: unknown, flag: string): z.output<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new CliError(`${flag}: ${parsed.error.issues[0]?.message ?? "invalid value"}`, "E_ARG")
  return parsed.data
}

/** `--limit`: a whole number from 1 to `max` (digits only: not `1e3`, not `-1`); `fallback` when not given. */
export function limitFlag(value: string | undefined, max: number, fallback = 100): number {
  const limit = value ?? String(fallback)
  if (!/^\d+$/.test(limit) || Number(limit) < 1 || Number(limit) > max)
    throw new CliError(`--limit: expected a whole number from 1 to ${max}`, "E_ARG")
  return Number(limit)
}

/**
 * The command line a command runs on nodes (`exec`, `deploy`, `run`, `nodes run`): every word left
 * over by the flags, `-- systemctl restart nginx` as much as `'systemctl restart nginx'`; "" for none.
 */
export const commandWords = (words: readonly unknown[]): string => words.map(String).join(" ").trim()
