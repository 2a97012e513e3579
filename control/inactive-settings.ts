// Settings this version validates but does not act on yet. A section specified ahead of its code is
// checked like every other, so a file written for it stays valid; but a value set there would change
// nothing. Accepting it in silence would let an operator believe it works, so the control plane names
// every such setting at start, with where it came from, on stderr. A section leaves this list in the
// change that makes it work; today every section is active, and the list is empty.
import type { LayeredConfig } from "./config.ts"
import { ChimeraConfig } from "./config-schema.ts"

export const INACTIVE_SECTIONS: Record<string, string> = {}

/** The inactive settings `layered` sets, as "notifications.email_to (from /etc/chimera.toml)". */
export function inactiveSettings(layered: LayeredConfig): { section: string; settings: string[] }[] {
  const defaults = ChimeraConfig.parse({}) as Record<string, unknown>
  const found: { section: string; settings: string[] }[] = []
  for (const section of Object.keys(INACTIVE_SECTIONS)) {
    const fields = Object.keys(defaults[section] as Record<string, unknown>)
    const settings = fields.flatMap((field) => {
      const by = layered.setBy(`${section}.${field}`)
      return by === null ? [] : [`${section}.${field} (from ${by})`]
    })
    if (settings.length > 0) found.push({ section, settings })
  }
  return found
}

/** One warning line per section that is set but not active, for the control plane's start. */
export function inactiveWarnings(layered: LayeredConfig): string[] {
  return inactiveSettings(layered).map(
    ({ section, settings }) =>
      `[${section}] is not active yet: ${INACTIVE_SECTIONS[section]}; ignoring ${settings.join(", ")}`,
  )
}
