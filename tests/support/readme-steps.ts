// The README's console sessions as steps to replay: every ```console block, in order; in it a line
// that starts with a prompt is a command (`$ ` on this machine, `NODE# ` in the shell that
// `bun scripts/testbed.ts shell NODE` opens), a line ending in `\` continues it, and the lines after a
// command, up to the next prompt, are what it printed. Blank lines separate commands and say nothing.
// A command's own shell comment can ask for patience: `# a moment later` means its output is what the
// command prints once the system has caught up, so it is run again until it does.

export interface ReadmeStep {
  /** `$` or the node's name. */
  where: string
  command: string
  expected: string[]
  /** Run again until the expected lines show (something else happens in the background). */
  eventually: boolean
  /** 1-based line of the command in the README, for messages. */
  line: number
}

const PROMPT = /^(\$|[a-z][a-z0-9-]*#) (.*)$/

export function readmeSteps(markdown: string): ReadmeStep[] {
  const steps: ReadmeStep[] = []
  const lines = markdown.split("\n")
  let inConsole = false
  let current: ReadmeStep | null = null
  let continues = false
  for (const [i, line] of lines.entries()) {
    if (!inConsole) {
      inConsole = line.trim() === "```console"
      continue
    }
    if (line.trim() === "```") {
      inConsole = false
      current = null
      continue
    }
    if (current && continues) {
      current.command += `\n${line}`
      continues = line.endsWith("\\")
      continue
    }
    const prompt = PROMPT.exec(line)
    if (prompt) {
      const [, where, command] = prompt as unknown as [string, string, string]
      current = {
        where: where === "$" ? "$" : where.slice(0, -1),
        command,
        expected: [],
        eventually: /#\s*a moment later\s*$/.test(command),
        line: i + 1,
      }
      steps.push(current)
      continues = command.endsWith("\\")
      continue
    }
    if (line.trim() === "") continue
    if (!current) throw new Error(`README line ${i + 1}: output before any command in a console block: ${line}`)
    current.expected.push(line)
  }
  if (inConsole) throw new Error("README: a ```console block is never closed")
  return steps
}

/** `bun scripts/testbed.ts shell NODE` with no command: it opens an interactive shell on NODE. */
export function opensNodeShell(step: ReadmeStep): string | null {
  const m = /^bun scripts\/testbed\.ts shell ([a-z][a-z0-9-]*)\s*(#.*)?$/.exec(step.command)
  return m ? (m[1] as string) : null
}
