// Ctrl-C while a command waits on the fleet. A spinner of @clack/prompts listens for SIGINT itself
// (to print "Canceled"), and a process with a SIGINT listener no longer dies of the signal: without
// this, Ctrl-C in a terminal printed "Canceled" and the command went on to its end, while the same
// Ctrl-C without a terminal ended it silently. Either way it now ends at once, with status 130 (as
// a shell shows for a command killed by SIGINT), saying what it leaves behind.
//
// At a terminal the spinner also puts stdin in raw mode and reads its keys, so Ctrl-C never becomes
// SIGINT there: it arrives as a key, on which @clack/core calls process.exit(0). A deploy interrupted
// at a terminal thus printed "Canceled" and exited 0, as if it had succeeded, without saying what it
// left behind. spinner() below gives that key back its meaning: it is raised as SIGINT.
import * as p from "@clack/prompts"
import { useColor } from "../../protocol/use-color.ts"
import { color, warn } from "./output.ts"

interface Key {
  name?: string
  ctrl?: boolean
}

/**
 * A @clack/prompts spinner on `output`, on whose raw terminal Ctrl-C is SIGINT, as on a cooked one: the
 * key is raised as the signal (to exitOnInterrupt's listener, or the command's own) before the spinner
 * sees it. None (null) where `output` takes no colour: a pipe, NO_COLOR, a dumb terminal. A spinner
 * rewrites its line with cursor sequences, and plain output never rewrites what it printed (output.ts).
 */
export function spinner(output: NodeJS.WriteStream = process.stdout): ReturnType<typeof p.spinner> | null {
  if (!useColor(output)) return null
  const spin = p.spinner({ output })
  const onKey = (_: string | undefined, key: Key | undefined) => {
    if (!key?.ctrl || key.name !== "c") return
    process.stdin.removeListener("keypress", onKey)
    process.emit("SIGINT", "SIGINT")
  }
  const stopped =
    <A extends unknown[]>(f: (...a: A) => void) =>
    (...a: A) => {
      process.stdin.removeListener("keypress", onKey)
      f(...a)
    }
  return {
    ...spin,
    start(message?: string) {
      spin.start(message)
      // Before the spinner's own key listener (registered by start), which would exit 0.
      process.stdin.removeListener("keypress", onKey)
      process.stdin.prependListener("keypress", onKey)
    },
    message: (message?: string) => spin.message(message),
    stop: stopped((message?: string) => spin.stop(message)),
    cancel: stopped((message?: string) => spin.cancel(message)),
    error: stopped((message?: string) => spin.error(message)),
    clear: stopped(() => spin.clear()),
    get isCancelled() {
      return spin.isCancelled
    },
  }
}

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

/**
 * Progress a Ctrl-C wait follows: `changed()` after each step of the work, `until(done)` resolves once
 * `done()` holds, looked at again after each change (Finishing.done).
 */
export function progressWaiter() {
  let next = Promise.withResolvers<void>()
  return {
    changed() {
      next.resolve()
      next = Promise.withResolvers<void>()
    },
    async until(done: () => boolean) {
      while (!done()) await next.promise
    },
  }
}

/** How long Ctrl-C waits for work it must finish (a publish an agent would undo): well inside the hold. */
export const INTERRUPT_GRACE_SECONDS = 15

export interface Finishing {
  /** What is still to finish, said at the first SIGINT; null when nothing is (then it ends at once). */
  waitingFor(): string | null
  /** Resolves when that work is done. */
  done(): Promise<unknown>
  /** The longest it waits for it; a second SIGINT stops the wait too. */
  seconds: number
  /** Said last, once the wait is over: where things were left. */
  message(): string
}

/**
 * Like exitOnInterrupt, for a command that would leave things worse if it stopped mid-way (a rollback
 * whose agents would undo it unless the control plane is told): the first SIGINT says what it finishes
 * and waits for it, at most `seconds` or until a second SIGINT, then says where things were left and
 * exits 130. `interrupted` tells the command's own path that it no longer owns the ending.
 */
export function finishOnInterrupt(f: Finishing): { release: () => void; readonly interrupted: boolean } {
  let interrupted = false
  const leave = (prefix: boolean) => {
    warn(`${prefix ? `\n${color.yellow("interrupted:")} ` : ""}${f.message()}\n`)
    process.exit(130)
  }
  const onInterrupt = () => {
    if (interrupted) return leave(false)
    interrupted = true
    const waiting = f.waitingFor()
    if (waiting === null) return leave(true)
    warn(`\n${color.yellow("interrupted:")} ${waiting} (up to ${f.seconds} s; Ctrl-C again to leave now)\n`)
    const timer = setTimeout(() => leave(false), f.seconds * 1000)
    void f.done().then(() => {
      clearTimeout(timer)
      leave(false)
    })
  }
  process.on("SIGINT", onInterrupt)
  return {
    release: () => process.removeListener("SIGINT", onInterrupt),
    get interrupted() {
      return interrupted
    },
  }
}
