// Reading a password for the CLI: from stdin with --password-stdin (for scripts; never from a flag,
// which would land in shell history and `ps`), else from a masked prompt on a terminal.
import * as p from "@clack/prompts"
import { CliError } from "./errors.ts"
import { promptStream } from "./output.ts"

export const passwordStdin = {
  type: "boolean",
  description: "Read the password from stdin (first line) instead of prompting",
} as const

let stdinLines: string[] | null = null

/** Reads line `index` of stdin (read once), so one pipe can carry a current and a new password. */
async function stdinLine(index: number): Promise<string> {
  stdinLines ??= (await Bun.stdin.text()).split(/\r?\n/)
  const line = stdinLines[index]
  if (line === undefined || line === "")
    throw new CliError("--password-stdin: stdin has no password on that line", "E_ARG")
  return line
}

export async function readSecret(message: string, fromStdin: boolean, line = 0): Promise<string> {
  if (fromStdin) return stdinLine(line)
  if (!process.stdin.isTTY)
    throw new CliError("no terminal to prompt for a password on; pass --password-stdin", "E_ARG")
  const answer = await p.password({ message, output: promptStream })
  if (p.isCancel(answer)) throw new CliError("cancelled", "E_CANCELLED")
  return answer
}
