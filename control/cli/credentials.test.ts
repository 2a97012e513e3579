// Which credential a CLI command sends, and what it says when it has none for the control plane named.
import { afterEach, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { controlCredential } from "./credentials.ts"
import { writeTokenFile } from "./token-file.ts"

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const home = () => {
  const d = mkdtempSync(join(tmpdir(), "chimera-credentials-"))
  dirs.push(d)
  return { HOME: d, XDG_CONFIG_HOME: "", CHIMERA_DATA_DIR: join(d, "data") }
}
const A = "http://127.0.0.1:18180"
const B = "http://127.0.0.1:18181"
const SESSION = { url: A, token: "chm_ses_0123456789abcdef", expiresAt: "2099-01-01T00:00:00Z" }

const refusal = (env: Record<string, string>) => {
  try {
    controlCredential(env)
  } catch (error) {
    return (error as Error).message
  }
  throw new Error("a credential was given")
}

test("a login kept for another control plane is not sent, and the refusal says where it is for", () => {
  const env = home()
  writeTokenFile(SESSION, env)
  expect(controlCredential({ ...env, CHIMERA_URL: A }).token).toBe(SESSION.token)
  // Another replica's URL: the session is not sent there, and the message says why and what to do.
  const message = refusal({ ...env, CHIMERA_URL: B })
  expect(message).toContain(`no token for ${B}`)
  expect(message).toContain(`is for ${A}`)
  expect(message).toContain(`\`chimera login\` at ${B}, or set CHIMERA_URL=${A}`)
  const remote = refusal({ ...env, CHIMERA_URL: "https://cp.example.internal" })
  expect(remote).toContain(`is for ${A}`)
  // With no session at all, the message names where it looked, as before.
  const fresh = home()
  expect(refusal({ ...fresh, CHIMERA_URL: B })).toContain("no token: run `chimera login`")
})
