import { afterEach, beforeEach, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseSshFlags } from "./ssh-flags.ts"

let dir: string
let saved: string | undefined

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "chimera-ssh-flags-"))
  saved = process.env.CHIMERA_CONFIG_FILE
})

afterEach(async () => {
  if (saved === undefined) delete process.env.CHIMERA_CONFIG_FILE
  else process.env.CHIMERA_CONFIG_FILE = saved
  await rm(dir, { recursive: true, force: true })
})

async function withConfig(ssh: string) {
  const path = join(dir, "chimera.toml")
  await writeFile(path, `${ssh}\n[fleet.nodes.web-1]\naddress = "root@127.0.0.11:22"\ntags = ["web"]\n`)
  process.env.CHIMERA_CONFIG_FILE = path
}

test("the config's [ssh] section gives the key, known_hosts and trust defaults; flags override them", async () => {
  const key = join(dir, "id_ed25519")
  const other = join(dir, "other_key")
  await writeFile(key, "key", { mode: 0o600 })
  await writeFile(other, "key", { mode: 0o600 })
  await withConfig(`[ssh]\nidentity_file = "${key}"\nknown_hosts_file = "${dir}/known_hosts"\ntrust_new_hosts = true`)
  const fromConfig = await parseSshFlags({ targets: "@web" })
  expect(fromConfig.targets.map((t) => t.name)).toEqual(["web-1"])
  expect(fromConfig.options).toMatchObject({ identity: key, knownHosts: `${dir}/known_hosts`, trustNewHosts: true })
  const fromFlags = await parseSshFlags({ targets: "web-1", identity: other, "known-hosts": `${dir}/kh2` })
  expect(fromFlags.options).toMatchObject({ identity: other, knownHosts: `${dir}/kh2`, trustNewHosts: true })
})

test("without [ssh] the executor's own defaults stand; an unreadable configured key names its setting", async () => {
  await withConfig("")
  const bare = await parseSshFlags({ targets: "web-1" })
  expect(bare.options).toMatchObject({ identity: undefined, knownHosts: undefined, trustNewHosts: false })
  await withConfig(`[ssh]\nidentity_file = "${dir}/missing"`)
  await expect(parseSshFlags({ targets: "web-1" })).rejects.toThrow(`ssh.identity_file: cannot read ${dir}/missing`)
  await expect(parseSshFlags({ targets: "web-1", identity: `${dir}/gone` })).rejects.toThrow(
    `--identity: cannot read ${dir}/gone`,
  )
})
