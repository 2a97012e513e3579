// Global flags (`--verbose/-v`, `--debug`) may stand anywhere on the command line, so they are read
// from argv once, before citty dispatches, and kept here for the commands that care.
export interface GlobalFlags {
  verbose: boolean
  debug: boolean
}

export const globals: GlobalFlags = { verbose: false, debug: false }

/** Removes the global flags from `argv` and records them. */
export function takeGlobalFlags(argv: string[]): string[] {
  const rest: string[] = []
  for (const [i, arg] of argv.entries()) {
    // After `--` every word is the command's to run (`chimera exec … -- grep -v x`), never a flag.
    if (arg === "--") return [...rest, ...argv.slice(i)]
    if (arg === "--verbose" || arg === "-v") globals.verbose = true
    else if (arg === "--debug") globals.debug = true
    else rest.push(arg)
  }
  return rest
}

/** The log level the global flags ask for, if any (-v is INFO, --debug is DEBUG). */
export function flagLogLevel(): string | undefined {
  if (globals.debug) return "DEBUG"
  if (globals.verbose) return "INFO"
  return undefined
}
