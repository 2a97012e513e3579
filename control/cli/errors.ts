// The CLI's one coded error. Whatever fails in a command ends up printed once, by cli/run.ts.

/**
 * The exit status of a usage mistake (an unknown command or flag, a missing argument, a flag value
 * refused: codes E_USAGE and E_ARG), sysexits.h's EX_USAGE: apart from every status a command gives
 * its outcome (1 failed, `watch --once`'s 1 healed and 2 not healed, `chat -q`'s 2, deploy's 3), so a
 * script tells a typo in its own command line from what happened to the fleet.
 */
export const USAGE_STATUS = 64

/**
 * The exit status of `watch --once` when its configuration fails before any node is checked (the Nix
 * file missing or not building, a bad chimera configuration): sysexits.h's EX_CONFIG. Not 1, which
 * cron reads as "healed", and not 2, which says a node needs a look: the fix is in the job's own files.
 */
export const CONFIG_STATUS = 78

/**
 * A failure that ends the command with `status` instead of 1, for a command whose 1 is an outcome
 * (`watch --once`: healed). cli/run.ts prints `failure` as it prints any error; a usage mistake still
 * exits USAGE_STATUS.
 */
export class ExitWith extends Error {
  override readonly name = "ExitWith"
  constructor(
    readonly failure: unknown,
    readonly status: number,
  ) {
    super(failure instanceof Error ? failure.message : String(failure))
  }
}
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
