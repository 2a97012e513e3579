// The configuration as a CLI command sees it: CHIMERA_CONFIG_FILE, then CHIMERA_<SECTION>_<FIELD>
// variables, then the command's own flags (control/config.ts), loaded once when the command starts.
// Its `log_level` is applied here, unless -v or --debug asked for a level on the command line. Commands
// that only talk to the control plane's API do not read it: a broken file on a workstation should not
// stop `chimera nodes list`.

import { setLogLevel } from "../../protocol/log.ts"
import { NixError } from "../adapters/nix.ts"
import { type LayeredConfig, type LoadConfigOptions, loadLayeredConfig } from "../config.ts"
import { CliError } from "./errors.ts"
import { flagLogLevel } from "./globals.ts"

export function commandConfig(options: Omit<LoadConfigOptions, "env" | "file"> = {}): LayeredConfig {
  const layered = loadLayeredConfig(options)
  setLogLevel(flagLogLevel() ?? layered.config.log_level)
  return layered
}

/** A flag's raw value for the config's flag layer: citty leaves an absent flag undefined. */
export const flagValue = (value: unknown): string | undefined =>
  value === undefined || value === null || value === "" ? undefined : String(value)

/** Where the Nix file's path came from, said with the flag and the setting that choose another. */
export const configPathSource = (layered: LayeredConfig) =>
  `--config or nix.config_path; this one from ${layered.setBy("nix.config_path") ?? "defaults"}`

/**
 * A missing Nix file (`run`, `deploy` and `watch` build or enter one) as an error naming where its
 * path came from, most often the default ./default.nix of a command given no --config; null for any
 * other failure.
 */
export function missingNixConfig(error: unknown, layered: LayeredConfig): CliError | null {
  if (!(error instanceof NixError && error.code === "NOT_FOUND")) return null
  return new CliError(`${error.message} (${configPathSource(layered)})`, "E_CONFIG")
}
