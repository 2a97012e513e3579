// `chimera web` logs its settings at start (INFO, `-v`): what an operator checks a deployment by. A
// secret in them never reaches the log: not the AI key, nor a password in the AI base URL (a proxy's).
import { afterAll, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { baseEnv, logLines } from "./support/config-layers.ts"
import { freePort } from "./support/control-plane.ts"
import { withWeb } from "./support/web-process.ts"

const work = await mkdtemp(join(tmpdir(), "chimera-web-settings-"))
afterAll(() => rm(work, { recursive: true, force: true }))

test("the settings line shows the AI models and base URL, without its password or the key", async () => {
  const config = join(work, "chimera.toml")
  await writeFile(
    config,
    [
      "[ai]",
      'provider = "openai"',
      'model = "gpt-test"',
      'models = ["gpt-other"]',
      'base_url = "http://aiuser:AIPROXYPASS99@127.0.0.1:9/v1"',
      'api_key = "sk-LLMSECRETKEY123456"',
    ].join("\n"),
  )
  const env = { ...(await baseEnv(work)), CHIMERA_CONFIG_FILE: config }
  const port = freePort()
  const { stderr } = await withWeb(["-v", "web", "--host", "127.0.0.1", "--port", String(port)], env, async () => {})
  const settings = logLines(stderr).find((l) => l.msg === "settings")
  expect(settings?.ai).toMatchObject({
    model: "gpt-test",
    models: ["gpt-other"],
    baseUrl: "http://[redacted]@127.0.0.1:9/v1",
    key: "set",
  })
  expect(stderr).not.toContain("AIPROXYPASS99")
  expect(stderr).not.toContain("LLMSECRETKEY")
}, 30_000)
