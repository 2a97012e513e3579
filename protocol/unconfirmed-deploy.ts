// The persistent marker of a push deploy still inside its confirm window (magic rollback). The
// watchdog that rolls an unconfirmed deploy back lives in /run, which a reboot wipes, and the boot
// loader's default is by then the new generation: a node rebooted inside the window would keep
// running a generation nobody confirmed. So before switching, the deploy writes this marker to disk
// (with the boot it happened in), the confirmation removes it, and the agent checks it at start: a
// marker from an earlier boot, with the unconfirmed closure running, is rolled back
// (agent/boot-check.ts). The format is `key=value` lines, so a POSIX shell can write it.
import { z } from "zod"
import { StorePath } from "./ids.ts"

/** On the node's disk (the agent's default state directory, which survives reboots). */
export const UNCONFIRMED_DEPLOY_MARKER = "/var/lib/chimera-agent/unconfirmed-deploy"
/** The kernel's id of the running boot: a new one at every boot. */
export const BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

export const UnconfirmedDeploy = z
  .object({
    boot_id: z.string().regex(/^[0-9A-Za-z-]{1,64}$/, "expected a boot id"),
    deploy: z.string().regex(/^[0-9A-Za-z._-]{1,128}$/, "expected a deploy id"),
    unconfirmed: StorePath,
    previous: StorePath,
  })
  .strict()
export type UnconfirmedDeploy = z.infer<typeof UnconfirmedDeploy>

/** Parses the marker's text; throws a ZodError on anything else. */
export function parseUnconfirmedDeploy(text: string): UnconfirmedDeploy {
  const fields: Record<string, string> = {}
  for (const line of text.split("\n")) {
    if (!line.trim()) continue
    const i = line.indexOf("=")
    fields[i < 0 ? line : line.slice(0, i)] = i < 0 ? "" : line.slice(i + 1)
  }
  return UnconfirmedDeploy.parse(fields)
}
