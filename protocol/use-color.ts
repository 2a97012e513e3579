// Whether the CLI and the agent write colour: the one test both use for their usage and output, and their
// usage text shown by it.

/**
 * Whether `stream` (stdout unless said) takes colour: a terminal that is not `dumb`, and NO_COLOR
 * (https://no-color.org) unset. Each stream answers for itself: `2>deploy.log` typed at a terminal
 * must not fill the log with escape codes, nor a piped stdout take the colour off a terminal's stderr.
 */
export const useColor = (stream: { isTTY?: boolean } = process.stdout) =>
  !process.env.NO_COLOR && stream.isTTY === true && process.env.TERM !== "dumb"

/** `text` as written to `stream` where it takes colour; elsewhere with its colour codes taken out (a pipe, a journal). */
export const colorIfTaken = (text: string, stream: { isTTY?: boolean } = process.stdout) =>
  useColor(stream) ? text : Bun.stripANSI(text)
