// Ctrl-C while a command waits on the fleet. A spinner of @clack/prompts listens for SIGINT itself
// (to print "Canceled"), and a process with a SIGINT listener no longer dies of the signal: without
// this, Ctrl-C in a terminal printed "Canceled" and the command went on to its end, while the same
// Ctrl-C without a terminal ended it silently. Either way it now ends at once, with status 130 (as
// a shell shows for a command killed by SIGINT), saying what it leaves behind.
import { color, warn } from "./output.ts"

/**
 * Until the returned function is called, SIGINT prints "interrupted: MESSAGE" on stderr and exits
 * 130. Call it after the spinner starts, so the spinner's own listener (which stops it) runs first.
 */
export function exitOnInterrupt(message: () => string): () => void {
  const onInterrupt = () => {
    warn(`\n${color.yellow("interrupted:")} ${message()}\n`)
    process.exit(130)
  }
  process.on("SIGINT", onInterrupt)
  return () => process.removeListener("SIGINT", onInterrupt)
}
