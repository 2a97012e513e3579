// One heal, always in this order: realise the closure if the store lacks it, point the system
// profile at it (`nix-env -p <profile> --set`, skipped when the profile is already there), run its
// `switch-to-configuration switch`, then read the links again. A switch that exits 0 but leaves the
// links elsewhere is a failure too: what counts is what the node runs, not what a script said.
// Failure is a value (error, output), never a throw; the reconciler decides about reports and retries.
import type { SystemLinks } from "../protocol/agent.ts"
import type { StorePath } from "../protocol/ids.ts"
import { createLogger } from "../protocol/log.ts"
import { capOutput, type NixSystem } from "./nix-system.ts"
import { LOCK_BUSY_CODE } from "./switch-lock.ts"

const log = createLogger("heal")

export interface HealRequest {
  nix: NixSystem
  closure: StorePath
  /** The links as the check that decided to heal read them. */
  links: SystemLinks
  inStore: boolean
}

export type HealOutcome = { links: SystemLinks; durationMs: number; output: string } & (
  | { success: true }
  | { success: false; error: string; missingClosure: boolean }
)

export async function healOnce(req: HealRequest): Promise<HealOutcome> {
  const { nix, closure } = req
  const t0 = performance.now()
  const outputs: string[] = []
  const ms = () => Math.round(performance.now() - t0)
  const fail = (error: string, links: SystemLinks, missingClosure = false): HealOutcome => ({
    success: false,
    error: error.slice(0, 4096),
    missingClosure,
    links,
    durationMs: ms(),
    output: capOutput(outputs.filter(Boolean).join("\n")),
  })

  if (!req.inStore) {
    const realised = await nix.realise(closure)
    outputs.push(realised.output)
    if (realised.code !== 0)
      return fail(
        `${closure} is not in the local store and \`nix-store --realise\` could not fetch it (exit ${realised.code}); copy the closure to the node or add a substituter`,
        req.links,
        true,
      )
  }
  if (req.links.profile !== closure) {
    const set = await nix.setProfile(closure)
    outputs.push(set.output)
    if (set.code === LOCK_BUSY_CODE) return fail(_lastLine(set.output), await nix.readLinks())
    if (set.code !== 0)
      return fail(
        `\`nix-env -p ${nix.paths.systemProfile} --set ${closure}\` exited ${set.code}`,
        await nix.readLinks(),
      )
  }
  const switched = await nix.switchTo(closure)
  outputs.push(switched.output)
  const links = await nix.readLinks()
  if (switched.code === LOCK_BUSY_CODE) return fail(_lastLine(switched.output), links)
  if (switched.code !== 0) return fail(`switch-to-configuration switch exited ${switched.code}`, links)
  if (links.current !== closure)
    return fail(
      `switch-to-configuration exited 0 but ${nix.paths.currentSystem} points at ${links.current ?? "nothing"}`,
      links,
    )
  if (links.profile !== closure)
    return fail(`the heal set ${nix.paths.systemProfile} but it points at ${links.profile ?? "nothing"}`, links)
  log.info("healed", { from: req.links.current, to: closure, ms: ms() })
  return { success: true, links, durationMs: ms(), output: capOutput(outputs.filter(Boolean).join("\n")) }
}

const _lastLine = (output: string) => output.trimEnd().split("\n").at(-1) ?? output
