// The agent's boot check for magic rollback. A push deploy writes a marker to disk before it switches
// to a generation nobody has confirmed yet (protocol/unconfirmed-deploy.ts) and removes it when the
// deploy is confirmed or rolled back. Its watchdog lives in /run: if the node reboots inside the
// confirm window the watchdog is gone and the boot loader brings the unconfirmed generation up again.
// So at start, before anything else, the agent reads the marker:
// - none: nothing to do;
// - written in this boot: the deploy is still deciding, its watchdog is alive; left alone;
// - from an earlier boot, the unconfirmed closure running: rolled back to the previous closure (the
//   profile set to it and switched to, under NixOS's switch lock, as a heal is), reported as
//   `boot.rolled-back`, and the marker removed; a rollback that fails is reported and kept for the
//   next start;
// - from an earlier boot, the previous closure running: a rollback of ours that the switch cut short (it
//   may restart the agent's own unit); reported as done, the marker removed;
// - from an earlier boot, something else running (someone switched since): nothing to undo; the
//   marker is removed.
// The marker only ever sends the node back to one of its own system generations, and only when it
// belongs to the agent's user and nobody else may write it: a planted file cannot pick the system.
import { readdirSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { createLogger } from "../protocol/log.ts"
import { parseUnconfirmedDeploy, type UnconfirmedDeploy } from "../protocol/unconfirmed-deploy.ts"
import { healOnce } from "./heal.ts"
import type { NixSystem } from "./nix-system.ts"
import type { ReportInput } from "./spool.ts"

const log = createLogger("boot-check")

export interface BootCheckInput {
  nix: NixSystem
  markerPath: string
  bootIdFile: string
  report(report: ReportInput): void
}

export type BootCheckOutcome = "none" | "this-boot" | "stale" | "rolled-back" | "rollback-failed"

export async function checkUnconfirmedDeploy(input: BootCheckInput): Promise<BootCheckOutcome> {
  const marker = _readMarker(input.markerPath)
  if (marker === null) return "none"
  let bootId: string
  try {
    bootId = readFileSync(input.bootIdFile, "utf8").trim()
  } catch (error) {
    log.error("cannot read the boot id; the unconfirmed-deploy marker is left for the next start", {
      file: input.bootIdFile,
      error: String(error),
    })
    return "none"
  }
  if (marker.boot_id === bootId) {
    log.info("a deploy in this boot is still in its confirm window; its watchdog decides", { deploy: marker.deploy })
    return "this-boot"
  }
  const links = await input.nix.readLinks()
  // A rollback of ours that switched and was cut short (the switch restarts this agent's unit when the
  // previous generation's differs): it is done, and still to be reported.
  if (links.current === marker.previous && links.profile === marker.previous) {
    log.info("the unconfirmed deploy was rolled back before this start", { deploy: marker.deploy })
    input.report({
      type: "boot.rolled-back",
      data: { unconfirmed: marker.unconfirmed, restored: marker.previous, success: true },
    })
    rmSync(input.markerPath, { force: true })
    return "rolled-back"
  }
  if (links.current !== marker.unconfirmed) {
    log.info("the node rebooted after an unconfirmed deploy but does not run it; nothing to undo", {
      deploy: marker.deploy,
      unconfirmed: marker.unconfirmed,
      current: links.current,
    })
    rmSync(input.markerPath, { force: true })
    return "stale"
  }
  if (!_isGeneration(input.nix.paths.systemProfile, marker.previous)) {
    log.error(
      "the unconfirmed-deploy marker names a previous system that is not a generation of the profile; ignored",
      {
        deploy: marker.deploy,
        previous: marker.previous,
        profile: input.nix.paths.systemProfile,
      },
    )
    rmSync(input.markerPath, { force: true })
    return "stale"
  }
  log.warn("the node rebooted into a deploy nobody confirmed; rolling back", {
    deploy: marker.deploy,
    unconfirmed: marker.unconfirmed,
    previous: marker.previous,
  })
  const outcome = await healOnce({
    nix: input.nix,
    closure: marker.previous,
    links,
    inStore: await input.nix.inStore(marker.previous),
  })
  const base = { unconfirmed: marker.unconfirmed, restored: marker.previous }
  if (outcome.success) {
    input.report({ type: "boot.rolled-back", data: { ...base, success: true } })
    rmSync(input.markerPath, { force: true })
    log.info("rolled back the unconfirmed deploy", { deploy: marker.deploy, ms: outcome.durationMs })
    return "rolled-back"
  }
  input.report({ type: "boot.rolled-back", data: { ...base, success: false, error: outcome.error } })
  log.error("could not roll back the unconfirmed deploy; tried again at the next start", {
    deploy: marker.deploy,
    error: outcome.error,
  })
  return "rollback-failed"
}

/** The marker, or null when there is none; an unreadable one is logged and removed (it can undo nothing). */
function _readMarker(path: string): UnconfirmedDeploy | null {
  let text: string
  try {
    const st = statSync(path)
    if (st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) {
      log.error("unconfirmed-deploy marker not owned by this user or writable by others; ignored", {
        path,
        uid: st.uid,
        mode: (st.mode & 0o777).toString(8),
      })
      return null
    }
    text = readFileSync(path, "utf8")
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null
    throw err
  }
  try {
    return parseUnconfirmedDeploy(text)
  } catch (error) {
    log.error("unreadable unconfirmed-deploy marker removed", { path, error: String(error).slice(0, 500) })
    rmSync(path, { force: true })
    return null
  }
}

/** Whether `closure` is what one of `profile`'s generation links (PROFILE-N-link) points at. */
function _isGeneration(profile: string, closure: string): boolean {
  const prefix = `${basename(profile)}-`
  try {
    return readdirSync(dirname(profile)).some((entry) => {
      if (!entry.startsWith(prefix) || !/-\d+-link$/.test(entry)) return false
      try {
        return realpathSync(join(dirname(profile), entry)) === closure
      } catch {
        return false
      }
    })
  } catch {
    return false
  }
}
