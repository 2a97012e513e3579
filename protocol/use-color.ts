// Whether the CLI and the agent write colour: the one test both use for their usage and output, and their
// usage text shown by it.

/** Whether stdout takes colour: a terminal that is not `dumb`, and NO_COLOR (https://no-color.org) unset. */
export const useColor = () => !process.env.NO_COLOR && process.stdout.isTTY === true && process.env.TERM !== "dumb"

/** `text` as written where stdout takes colour; elsewhere with its colour codes taken out (a pipe, a journal). */
export const colorIfTaken = (text: string) => (useColor() ? text : Bun.stripANSI(text))
