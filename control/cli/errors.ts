// The CLI's one coded error. Whatever fails in a command ends up printed once, by cli/run.ts.
export class CliError extends Error {
  override readonly name = "CliError"
  constructor(
    message: string,
    readonly code = "E_CLI",
  ) {
    super(message)
  }
}
