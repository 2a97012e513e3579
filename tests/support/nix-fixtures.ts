// Real closures for tests: each generation of nix/test-system.nix is a small system whose
// switch-to-configuration moves /run/current-system as NixOS's does. Builds are cached by Nix,
// so asking twice for one generation costs a store lookup, not a build.
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import type { StorePath } from "../../protocol/ids.ts"
import { requireTool, runOk } from "./tools.ts"

const TEST_SYSTEM = join(import.meta.dir, "../../nix/test-system.nix")
const NO_SUBSTITUTERS = { NIX_CONFIG: `${process.env.NIX_CONFIG ?? ""}\nsubstituters =\n` }

export interface TestSystemOptions {
  /** Part of the store name; different tags give different closures for the same generation. */
  tag?: string
  /** A system whose switch-to-configuration fails, as a broken configuration's would. */
  failSwitch?: boolean
  /** A system whose switch-to-configuration takes this many seconds and writes to stderr before and after. */
  slowSwitch?: number
}

export async function buildTestSystem(generation: number | string, opts: TestSystemOptions = {}): Promise<StorePath> {
  const nixBuild = requireTool("nix-build")
  const args = [nixBuild, TEST_SYSTEM, "--no-out-link", "--argstr", "generation", String(generation)]
  if (opts.tag) args.push("--argstr", "tag", opts.tag)
  if (opts.failSwitch) args.push("--arg", "failSwitch", "true")
  if (opts.slowSwitch) args.push("--arg", "slowSwitch", String(opts.slowSwitch))
  const out = (await runOk(args, { env: NO_SUBSTITUTERS })).trim().split("\n").at(-1) ?? ""
  if (!out.startsWith("/nix/store/")) throw new Error(`nix-build printed no store path: ${out}`)
  return out as StorePath
}

/** A well-formed store path that is not in the store (and cannot be substituted here). */
export function absentStorePath(name = "chimera-absent-system"): StorePath {
  const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
  const hash = Array.from(randomBytes(32), (b) => alphabet[b % 32]).join("")
  return `/nix/store/${hash}-${name}` as StorePath
}
