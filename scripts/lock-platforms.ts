#!/usr/bin/env bun
// Adds package-lock.json entries for the platform binaries of Biome that this machine's npm registry
// does not serve (macOS, Windows, Android, musl). npm writes lock entries only for what it could
// fetch, and `npm ci` then refuses the lock as out of sync with package.json. An entry with version,
// os, cpu and libc is enough: npm skips it on this platform without fetching anything.
//
// usage: bun scripts/lock-platforms.ts [package-lock.json]     (run it after every `npm install`)
import { join } from "node:path"

const path = process.argv[2] ?? join(import.meta.dir, "..", "package-lock.json")
type Entry = Record<string, unknown>
const lock = (await Bun.file(path).json()) as { packages: Record<string, Entry> }
const biome = lock.packages["node_modules/@biomejs/biome"]
if (!biome) throw new Error(`${path} has no @biomejs/biome: nothing to do`)

const PLATFORMS: [suffix: string, os: string, cpu: string, libc?: string][] = [
  ["android-arm64", "android", "arm64"],
  ["android-x64", "android", "x64"],
  ["darwin-arm64", "darwin", "arm64"],
  ["darwin-x64", "darwin", "x64"],
  ["linux-arm64-musl", "linux", "arm64", "musl"],
  ["linux-x64-musl", "linux", "x64", "musl"],
  ["win32-arm64", "win32", "arm64"],
  ["win32-x64", "win32", "x64"],
]

let added = 0
for (const [suffix, os, cpu, libc] of PLATFORMS) {
  const key = `node_modules/@biomejs/cli-${suffix}`
  if (lock.packages[key]) continue
  lock.packages[key] = {
    version: biome.version,
    cpu: [cpu],
    dev: true,
    license: "MIT OR Apache-2.0",
    optional: true,
    os: [os],
    ...(libc ? { libc: [libc] } : {}),
    engines: { node: ">=14.21.3" },
  }
  added++
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
await Bun.write(path, `${JSON.stringify(lock, null, 2)}\n`)
console.log(
  added === 0
    ? "package-lock.json already lists every Biome platform"
    : `added ${added} Biome platform entries to ${path}`,
)
