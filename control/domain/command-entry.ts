// What a command registry entry says about a program, and the shorthands the registry's tables are
// written with (command-registry.ts and command-registry-nix.ts list the programs; command-assessment.ts
// and command-flags.ts read the entries). An entry gives the program's category and risk, the flags
// and subcommands known to keep that risk, and where it writes. `short` is getopt-style (`n:` takes a
// value); `long` lists whole names (`--lines:` takes a value, `--color?` an optional `=value`, `-name:`
// a single-dash word as find and test use them); `*` means the program has no flag that writes,
// deletes or runs anything.
import { z } from "zod"

export const RiskLevel = z.enum(["low", "medium", "high"])
export type RiskLevel = z.infer<typeof RiskLevel>

export interface CommandOption {
  flag: string
  description: string
}

export interface RegistryEntry {
  description: string
  category: string
  output_format: "text" | "tabular" | "json" | "none"
  risk_level: RiskLevel
  common_options?: CommandOption[]
  /** Short flags known to be safe, getopt-style (`n:` takes a value); `*`: any flag. */
  short?: string
  /** Long flags known to be safe: `--name`, `--name:` (takes a value), `--name?` (optional `=value`). */
  long?: string
  /** Every operand must match (else high); `maxOperands` bounds how many. */
  operands?: RegExp
  maxOperands?: number
  /** Subcommands (first operand): only these are known; any other is high. */
  subcommands?: Record<string, RiskLevel>
  /** The risk with no subcommand at all (default: the entry's own). */
  bare?: RiskLevel
  /**
   * Where the program writes: all its operands (`tee`), all but the first (`chmod MODE FILE…`, unless
   * --reference names the mode), the last one (`cp`'s destination), the values of these flags (`-o`,
   * `--directory`), or both. Each such path must be a known place (command-assessment.ts), as for `>`;
   * a `last` program given a target flag writes only there.
   */
  writes?: { operands?: "all" | "rest" | "last"; flags?: string[] }
  /** Flags whose value is a profile the program makes links in: only under /nix/var/nix/profiles. */
  profiles?: string[]
  /** Flags of which one must be given, or the program is high (`nix-build --no-out-link`). */
  needs?: string[]
  /** A signal given as a flag (`-9`, `-TERM`) is a flag like the others. */
  signals?: boolean
  /** Arguments that change the risk (`nix-store --delete` raises it, `-q` lowers it). */
  riskyFlags?: { pattern: RegExp; risk: RiskLevel }[]
}

/** An entry whose output is text unless `more` says otherwise. */
export const entry = (
  category: string,
  description: string,
  risk_level: RiskLevel,
  more: Partial<RegistryEntry> = {},
): RegistryEntry => ({ category, description, risk_level, output_format: "text", ...more })

/** A program that only reads, with the flags `more` names as safe. */
export const READ = (category: string, description: string, more: Partial<RegistryEntry> = {}) =>
  entry(category, description, "low", more)
/** Reads only, whatever its flags. */
export const ANY = { short: "*" }
/** A program that runs or changes things and is therefore high whatever follows it. */
export const HIGH = (category: string, description: string) => entry(category, description, "high")
