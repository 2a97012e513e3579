// The NixPort against the real Nix of this machine (no nixpkgs, no substituters: tests/preload.ts).
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { hashOf } from "../../protocol/ids.ts"
import { requireTool } from "../../tests/support/tools.ts"
import { createNix, NixError } from "./nix.ts"

for (const tool of ["nix-build", "nix-instantiate", "nix-store"]) requireTool(tool)
const NIX_DIR = join(import.meta.dir, "../../nix")
const nix = createNix()
const dir = await mkdtemp(join(tmpdir(), "chimera-nix-test-"))
afterAll(() => rm(dir, { recursive: true, force: true }))

async function nixFile(name: string, text: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, text)
  return path
}

const failing = (path: Promise<unknown>) =>
  path.then(
    () => null,
    (e: unknown) => e as NixError,
  )

describe("NixPort on real Nix", () => {
  test("build gives the out path, its hash, and whether it is a NixOS-like system", async () => {
    const system = await nix.build(join(NIX_DIR, "test-system.nix"))
    expect(system.outPath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-chimera-test-system-1$/)
    expect(system.hash).toBe(hashOf(system.outPath))
    expect(system.isSystem).toBe(true)
    const shell = await nix.build(join(NIX_DIR, "dev-shell.nix"))
    expect(shell.isSystem).toBe(false)
    expect(existsSync(shell.outPath)).toBe(true)
  })

  test("a relative config path is resolved against the cwd", async () => {
    const nixRelative = createNix({ cwd: NIX_DIR })
    expect((await nixRelative.build("test-system.nix")).isSystem).toBe(true)
  })

  test("a missing config is a NOT_FOUND error naming the absolute path", async () => {
    const error = await failing(nix.build(join(dir, "absent.nix")))
    expect(error).toBeInstanceOf(NixError)
    expect(error?.code).toBe("NOT_FOUND")
    expect(error?.message).toBe(`no Nix config at ${join(dir, "absent.nix")}`)
    expect((await failing(nix.instantiate(join(dir, "absent.nix"))))?.code).toBe("NOT_FOUND")
    expect((await failing(nix.shell(join(dir, "absent.nix"), "true")))?.code).toBe("NOT_FOUND")
  })

  test("a built closure, or a link to one such as ./result, is taken as it is, without nix-build", async () => {
    const system = await nix.build(join(NIX_DIR, "test-system.nix"))
    const link = join(dir, "result")
    await symlink(system.outPath, link)
    // No Nix tool on PATH: anything that ran one would fail.
    const noTools = createNix({ env: { PATH: "/nonexistent" } })
    expect(await noTools.build(link)).toEqual(system)
    expect(await noTools.build(system.outPath)).toEqual(system)
    const error = await failing(noTools.instantiate(link))
    expect(error?.code).toBe("VALIDATION_FAILED")
    expect(error?.message).toContain("is a built closure, not a Nix file")
  })

  test("a ./result whose closure is gone says so, not that there is no Nix config", async () => {
    const gone = "/nix/store/00000000000000000000000000000000-chimera-collected"
    const link = join(dir, "collected-result")
    await symlink(gone, link)
    const error = await failing(nix.build(link))
    expect(error?.code).toBe("NOT_FOUND")
    expect(error?.message).toContain(`${link} links to ${gone}, which is not in this machine's Nix store`)
    const bare = await failing(nix.build(gone))
    expect(bare?.message).toContain(`${gone} is not in this machine's Nix store`)
  })

  test("a flake reference is NOT_FOUND with how to build it and pass ./result", async () => {
    const error = await failing(nix.build(".#web-1"))
    expect(error?.code).toBe("NOT_FOUND")
    expect(error?.message).toContain("nix build .#nixosConfigurations.NAME.config.system.build.toplevel")
    expect(error?.message).toContain("--config ./result")
    // A flake's directory, which has no default.nix, gets the same hint.
    const flake = join(dir, "a-flake")
    await mkdir(flake)
    await writeFile(join(flake, "flake.nix"), "{ outputs = _: { }; }")
    const fromDir = await failing(nix.build(flake))
    expect(fromDir?.message).toContain(`no Nix config at ${flake}/default.nix; a flake reference is not built here`)
  })

  test("an evaluation error carries Nix's message and names the config", async () => {
    const path = await nixFile("throws.nix", 'builtins.throw "chimera-eval-boom"')
    const error = await failing(nix.build(path))
    expect(error?.code).toBe("VALIDATION_FAILED")
    expect(error?.message).toContain(`nix-build ${path} failed`)
    expect(error?.message).toContain("chimera-eval-boom")
    expect((await failing(nix.instantiate(path)))?.message).toContain("chimera-eval-boom")
  })

  test("a failing builder's last words are in the error", async () => {
    const path = await nixFile(
      "fails.nix",
      `derivation { name = "chimera-fails-${Date.now()}"; system = builtins.currentSystem; builder = "/bin/sh";
        args = [ "-c" "echo chimera-builder-said-no >&2; exit 1" ]; }`,
    )
    const error = await failing(nix.build(path))
    expect(error?.stderr).toContain("chimera-builder-said-no")
  })

  test("instantiate gives the .drv without building", async () => {
    const drv = await nix.instantiate(join(NIX_DIR, "dev-shell.nix"))
    expect(drv).toMatch(/^\/nix\/store\/[0-9a-z]{32}-chimera-dev-shell\.drv$/)
  })

  test("shell runs the command inside nix-shell with the derivation's environment and its tools", async () => {
    const out = await nix.shell(join(NIX_DIR, "dev-shell.nix"), 'echo "marker=$CHIMERA_SHELL"; chimera-hello')
    expect(out).toBe("marker=1\nhello from the chimera dev shell\n")
  })

  test("shell throws with the command's stderr when it fails", async () => {
    const error = await failing(nix.shell(join(NIX_DIR, "dev-shell.nix"), "echo shell-said-no >&2; exit 4"))
    expect(error?.message).toContain("exit 4")
    expect(error?.message).toContain("shell-said-no")
  })

  test("with no <nixpkgs>, the interactive shell is bash from PATH by absolute path", async () => {
    const argv = await nix.interactiveShell(join(NIX_DIR, "dev-shell.nix"), "X=1")
    expect(argv[0]).toBe("env")
    expect(argv[1]).toMatch(/^NIX_BUILD_SHELL=\/.*\/bash$/)
    expect(argv.slice(2)).toEqual(["nix-shell", join(NIX_DIR, "dev-shell.nix"), "--command", "X=1; return"])
  })

  test("closureSize and requisites agree on the closure's paths and NAR bytes", async () => {
    const { outPath } = await nix.build(join(NIX_DIR, "test-system.nix"))
    const paths = await nix.requisites(outPath)
    expect(paths.map((p) => p.path)).toContain(outPath)
    expect(paths.every((p) => p.narBytes > 0)).toBe(true)
    const size = await nix.closureSize(outPath)
    expect(size).toEqual({ paths: paths.length, narBytes: paths.reduce((sum, p) => sum + p.narBytes, 0) })
  })
})
