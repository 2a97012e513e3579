// `chimera login`'s token file: private from its first byte, and never written through a symlink
// that someone left at its name.
import { afterEach, describe, expect, test } from "bun:test"
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { readTokenFile, tokenFilePath, writeTokenFile } from "./token-file.ts"

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const home = () => {
  const d = mkdtempSync(join(tmpdir(), "chimera-token-file-"))
  dirs.push(d)
  return { HOME: d, XDG_CONFIG_HOME: "" }
}
const STORED = { url: "http://127.0.0.1:8080", token: "chm_api_0123456789abcdef", expiresAt: "2026-12-01T00:00:00Z" }

describe("token file", () => {
  test("is a 0600 file in a 0700 directory, read back only for its URL", () => {
    const env = home()
    const path = writeTokenFile(STORED, env)
    expect(lstatSync(path).mode & 0o777).toBe(0o600)
    expect(lstatSync(join(path, "..")).mode & 0o777).toBe(0o700)
    expect(readTokenFile(STORED.url, env)).toEqual(STORED)
    expect(readTokenFile("http://127.0.0.1:9999", env)).toBeNull()
  })

  test("a symlink at its name is replaced, not followed: the file it points at is untouched", () => {
    const env = home()
    const victim = join(env.HOME, "victim")
    writeFileSync(victim, "unchanged\n", { mode: 0o644 })
    mkdirSync(join(env.HOME, ".config", "chimera"), { recursive: true, mode: 0o755 })
    symlinkSync(victim, tokenFilePath(env))
    const path = writeTokenFile(STORED, env)
    expect(readFileSync(victim, "utf8")).toBe("unchanged\n")
    expect(lstatSync(path).isSymbolicLink()).toBe(false)
    expect(lstatSync(path).mode & 0o777).toBe(0o600)
    expect(lstatSync(join(path, "..")).mode & 0o777).toBe(0o700)
  })
})
