import { afterEach, describe, expect, test } from "bun:test"
import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NodeHealth } from "../protocol/agent.ts"
import type { NodeId, StorePath } from "../protocol/ids.ts"
import { collectHealth } from "./health.ts"
import { openStateDir, StateFileError } from "./state-dir.ts"

const closure = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-system-1" as StorePath
const dirs: string[] = []
function temp(): string {
  const dir = mkdtempSync(join(tmpdir(), "chimera-state-"))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe("state dir", () => {
  test("is created 0700, also when it already existed with a looser mode", () => {
    const path = join(temp(), "state")
    mkdirSync(path, { mode: 0o755 })
    chmodSync(path, 0o755)
    openStateDir(path)
    expect(statSync(path).mode & 0o777).toBe(0o700)
  })

  test("one another user owns, or their link to one, is refused: they could open it up again", () => {
    const parent = temp()
    const theirs = join(parent, "theirs")
    mkdirSync(theirs, { mode: 0o700 })
    chownSync(theirs, 65534, 65534)
    expect(() => openStateDir(theirs)).toThrow(StateFileError)
    expect(() => openStateDir(theirs)).toThrow(/belongs to uid 65534, not to this agent's user/)
    const link = join(parent, "link")
    symlinkSync(join(parent, "mine"), link)
    mkdirSync(join(parent, "mine"))
    lchownSync(link, 65534, 65534)
    expect(() => openStateDir(link)).toThrow(/belongs to uid 65534/)
    // A link of this user's (or root's) to a directory of this user's is fine.
    lchownSync(link, process.getuid?.() ?? 0, 0)
    expect(openStateDir(link).readCredential()).toBeNull()
  })

  test("stores the credential 0600 and reads it back", () => {
    const state = openStateDir(join(temp(), "state"))
    expect(state.readCredential()).toBeNull()
    const credential = {
      nodeId: "web-1",
      credential: "x".repeat(40),
      controlUrl: "http://127.0.0.1:8080",
      enrolledAt: new Date().toISOString(),
    }
    state.writeCredential(credential)
    expect(statSync(join(state.path, "credential.json")).mode & 0o777).toBe(0o600)
    expect(state.readCredential()).toEqual(credential)
  })

  test("keeps the desired closure across reopening", () => {
    const path = join(temp(), "state")
    openStateDir(path).writeDesired({ closure, setAt: new Date().toISOString(), source: "command" })
    expect(openStateDir(path).readDesired()?.closure).toBe(closure)
  })

  test("a corrupt file is a clear error naming it, not a silent reset", () => {
    const state = openStateDir(join(temp(), "state"))
    writeFileSync(join(state.path, "desired.json"), "{not json")
    expect(() => state.readDesired()).toThrow(StateFileError)
    expect(() => state.readDesired()).toThrow(/desired\.json: not valid JSON/)
  })
})

describe("health", () => {
  test("what the heartbeat sends satisfies the wire contract", async () => {
    const health = await collectHealth({
      nodeId: "web-1" as NodeId,
      links: { profile: closure, current: closure, booted: null },
      desired: closure,
      phase: "congruent",
      heartbeatIntervalSeconds: 5,
    })
    expect(NodeHealth.parse(health)).toEqual(health)
    expect(health.memory.totalBytes).toBeGreaterThan(0)
    expect(health.memory.availableBytes).toBeLessThanOrEqual(health.memory.totalBytes)
    expect(health.disk.totalBytes).toBeGreaterThan(0)
  })
})
