// --control-url: one control plane URL or several replicas of it, comma-separated, from the flag (which
// may be repeated: each occurrence adds to the list) or from CHIMERA_URL. Every
// entry must be an http:// or https:// URL; a bad one is refused naming its position and value, so a
// typo in the third of five replicas is found at start, not at the first failover. Duplicates collapse.
import { z } from "zod"
import { repeatedValues } from "../protocol/cli-flags.ts"

const ControlUrl = z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" })

/** The flag's text (absent: none) to the list of replica URLs, in the order given. */
export const ControlUrls = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const urls: string[] = []
    const entries = v === undefined ? [] : v.split(",").map((e) => e.trim())
    for (const [i, entry] of entries.entries()) {
      const url = ControlUrl.safeParse(entry)
      if (!url.success) {
        const which = entries.length > 1 ? `entry ${i + 1} of ${entries.length}, ` : ""
        ctx.addIssue({
          code: "custom",
          message: `${which}${JSON.stringify(entry)}, is not an http:// or https:// URL (several replicas: URL,URL,…)`,
        })
        return z.NEVER
      }
      if (!urls.includes(url.data)) urls.push(url.data)
    }
    return urls
  })

/**
 * citty keeps only the last of a repeated flag; a repeated --control-url adds to the list instead, so
 * every occurrence is gathered from argv (`--control-url URL` and `--control-url=URL`) and joined.
 */
export function gatherControlUrls(raw: Record<string, unknown>, argv: string[]): Record<string, unknown> {
  const nonEmpty = repeatedValues(argv, "control-url").filter((g) => g !== "")
  return nonEmpty.length > 1 ? { ...raw, "control-url": nonEmpty.join(",") } : raw
}
