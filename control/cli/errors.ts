// The CLI's one coded error. Whatever fails in a command ends up printed once, by cli/run.ts.
export class CliError extends Error {
  override readonly name = "CliError"
  constructor(
    message: string,
    readonly code = "E_CLI",
    /** The API's own code, when the error is its answer (STORE_UNAVAILABLE, NOT_FOUND, …). */
    readonly apiCode?: string,
  ) {
    super(message)
  }
}

/** The control plane did not answer at all: where the CLI looked, and the two things to check. */
export function unreachable(url: string, error: unknown): CliError {
  return new CliError(
    `cannot reach the control plane at ${url} (${(error as Error).message}); is \`chimera web\` running? Set CHIMERA_URL to its address.`,
    "E_UNREACHABLE",
  )
}
