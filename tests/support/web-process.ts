// `chimera web` as its own process, for what only a whole start shows (its settings line at INFO, what
// it warns about, the address it listens on): started, awaited until it says where it listens and its
// health answers, used, then stopped with SIGTERM, and its stderr returned.
import { join } from "node:path"
import { streamText } from "./stream.ts"
import { waitFor } from "./wait.ts"

const MAIN = join(import.meta.dir, "../../control/main.ts")

/** Runs `chimera <args>` (a `web` command line) around `during(url)`; returns what it gave and the stderr. */
export async function withWeb<T>(
  args: string[],
  env: Record<string, string | undefined>,
  during: (url: string) => Promise<T>,
): Promise<{ result: T; stderr: string }> {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], { env, stdout: "pipe", stderr: "pipe" })
  try {
    // The first line says where it listens ("… on http://HOST:PORT"); it exiting first is the failure.
    const stdout = streamText(proc.stdout)
    if (await stdout.until((text) => text.includes("\n")))
      throw new Error(`chimera web exited: ${await new Response(proc.stderr).text()}`)
    const url = /on (http:\/\/\S+)/.exec(stdout.text)?.[1]
    if (!url) throw new Error(`chimera web's first line names no address: ${JSON.stringify(stdout.text)}`)
    await waitFor(
      "the control plane's health",
      () =>
        fetch(`${url}/api/health`).then(
          (r) => r.ok,
          () => false,
        ),
      Boolean,
      60_000,
    )
    const result = await during(url)
    proc.kill("SIGTERM")
    await proc.exited
    return { result, stderr: await new Response(proc.stderr).text() }
  } finally {
    if (proc.exitCode === null) proc.kill("SIGKILL")
  }
}
