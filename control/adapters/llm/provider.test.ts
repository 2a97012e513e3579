// `[ai]` as the control plane reads it: the key from api_key, api_key_file or CHIMERA_AI_API_KEY and
// never in an error, the defaults per provider, the models a chat may choose, and settings that would
// do nothing refused.
import { describe, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigError, loadConfig } from "../../config.ts"
import { aiSettings } from "./provider.ts"

const SECRET = "sk-ant-secret-0123456789abcdef"

const settings = (env: Record<string, string>) => aiSettings(loadConfig({ env }))

/** The message of what `run` throws; a run that throws nothing fails the test. */
function thrown(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    return String(error)
  }
  throw new Error("accepted")
}

describe("[ai]", () => {
  test("no provider: no chat, and nothing else may be set", () => {
    expect(settings({})).toBeNull()
    expect(() => settings({ CHIMERA_AI_MODEL: "gpt-4o" })).toThrow("ai.model set but ai.provider is not")
    expect(() => settings({ CHIMERA_AI_API_KEY: SECRET })).toThrow(ConfigError)
    const said = thrown(() => settings({ CHIMERA_AI_API_KEY: SECRET, CHIMERA_AI_TIMEOUT_SECONDS: "5" }))
    expect(said).toContain("ai.timeout_seconds")
    expect(said).not.toContain(SECRET)
  })

  test("the key from the environment, defaults per provider", () => {
    const s = settings({ CHIMERA_AI_PROVIDER: "anthropic", CHIMERA_AI_API_KEY: SECRET })
    expect(s).toEqual({
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      models: [],
      baseUrl: "",
      apiKey: SECRET,
      timeoutMs: 120_000,
      questionTtlSeconds: 300,
      maxContextTokens: 100_000,
      turnLeaseSeconds: 30,
    })
    const o = settings({ CHIMERA_AI_PROVIDER: "openai", CHIMERA_AI_BASE_URL: "http://127.0.0.1:11434/v1/" })
    expect(o).toMatchObject({ provider: "openai", model: "gpt-4o", baseUrl: "http://127.0.0.1:11434/v1", apiKey: "" })
  })

  test("a key over plain http beyond this host is refused, never shown; without a key, or on loopback, it is not", () => {
    const refused = thrown(() =>
      settings({
        CHIMERA_AI_PROVIDER: "anthropic",
        CHIMERA_AI_API_KEY: SECRET,
        CHIMERA_AI_BASE_URL: "http://10.0.0.5:8080",
      }),
    )
    expect(refused).toContain("config: ai.base_url: http://10.0.0.5:8080 is plain http beyond this host")
    expect(refused).not.toContain(SECRET)
    const https = {
      CHIMERA_AI_PROVIDER: "openai",
      CHIMERA_AI_API_KEY: SECRET,
      CHIMERA_AI_BASE_URL: "https://llm.example/v1",
    }
    expect(settings(https)?.baseUrl).toBe("https://llm.example/v1")
    const loopback = { ...https, CHIMERA_AI_BASE_URL: "http://127.0.0.1:8000/v1" }
    expect(settings(loopback)?.baseUrl).toBe("http://127.0.0.1:8000/v1")
    const keyless = { CHIMERA_AI_PROVIDER: "openai", CHIMERA_AI_BASE_URL: "http://10.0.0.5:11434/v1" }
    expect(settings(keyless)?.apiKey).toBe("")
  })

  test("models: what a chat may choose besides model, read as a list; a name no API takes is refused", () => {
    const s = settings({ CHIMERA_AI_PROVIDER: "openai", CHIMERA_AI_MODELS: "gpt-4o-mini, o3-mini" })
    expect(s).toMatchObject({ model: "gpt-4o", models: ["gpt-4o-mini", "o3-mini"] })
    expect(settings({ CHIMERA_AI_PROVIDER: "openai" })?.models).toEqual([])
    expect(thrown(() => settings({ CHIMERA_AI_PROVIDER: "openai", CHIMERA_AI_MODELS: "gpt 4o" }))).toContain(
      'ai.models.0: expected a model name such as claude-sonnet-4-5 or gpt-4o, got "gpt 4o"',
    )
    expect(() => settings({ CHIMERA_AI_MODELS: "gpt-4o-mini" })).toThrow("ai.models set but ai.provider is not")
  })

  test("anthropic without a key is refused with where to put one", () => {
    expect(() => settings({ CHIMERA_AI_PROVIDER: "anthropic" })).toThrow("CHIMERA_AI_API_KEY")
  })

  test("api_key_file is read at start, relative to the config file; with api_key too it is refused", async () => {
    const dir = await mkdtemp(join(tmpdir(), "chimera-ai-key-"))
    try {
      await writeFile(join(dir, "ai.key"), `${SECRET}\n`, { mode: 0o600 })
      const file = join(dir, "chimera.toml")
      await writeFile(file, '[ai]\nprovider = "anthropic"\napi_key_file = "ai.key"\n')
      expect(aiSettings(loadConfig({ env: { CHIMERA_CONFIG_FILE: file } }))?.apiKey).toBe(SECRET)
      expect(() => aiSettings(loadConfig({ env: { CHIMERA_CONFIG_FILE: file, CHIMERA_AI_API_KEY: SECRET } }))).toThrow(
        "keep one",
      )
      await writeFile(file, '[ai]\nprovider = "anthropic"\napi_key_file = "missing.key"\n')
      expect(() => aiSettings(loadConfig({ env: { CHIMERA_CONFIG_FILE: file } }))).toThrow("ENOENT")
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test("a bad value names the setting, never the key", () => {
    const bad = thrown(() => loadConfig({ env: { CHIMERA_AI_PROVIDER: "gemini", CHIMERA_AI_API_KEY: SECRET } }))
    expect(bad).toContain('ai.provider: expected "anthropic", "openai" or "" (none)')
    expect(bad).not.toContain(SECRET)
    expect(thrown(() => loadConfig({ env: { CHIMERA_AI_TIMEOUT_SECONDS: "0" } }))).toContain("ai.timeout_seconds")
  })
})
