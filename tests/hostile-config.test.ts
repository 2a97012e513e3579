// Hostile input against the config loader: generated TOML files and CHIMERA_* environment
// values, well-formed and not. Loading either succeeds with a valid configuration or fails with one
// ConfigError that names the setting; it never throws anything else and never echoes a secret.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import fc from "fast-check"
import { ConfigError, loadConfig } from "../control/config.ts"
import { ChimeraConfig } from "../control/config-schema.ts"

const RUNS = 1000
const SECRET = "sk-hostile-SECRET-value-42"

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "chimera-hostile-config-"))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const sections = Object.keys(ChimeraConfig.parse({}))
const key = fc.oneof(
  fc.constantFrom(
    "port",
    "host",
    "api",
    "agent",
    "window_seconds",
    "jwt_ttl_seconds",
    "api_key",
    "interval_seconds",
    "targets",
  ),
  fc.string({ maxLength: 12 }),
)
const value = fc.oneof(
  fc.integer().map(String),
  fc.double().map(String),
  fc.constantFrom("true", "0", "-1", "1e309", '""', "[]", "{}", "[1, 2]", `"${SECRET}"`, "'''x'''", "nan", "inf"),
  fc.string({ maxLength: 30 }).map((s) => JSON.stringify(s)),
  fc.string({ maxLength: 30 }),
)
const line = fc.oneof(
  fc.tuple(key, value).map(([k, v]) => `${k} = ${v}`),
  fc.oneof(fc.constantFrom(...sections), fc.string({ maxLength: 10 })).map((s) => `[${s}]`),
  fc.constantFrom("[[x]]", "= 1", "[", "a.b.c = 1", "\u0000", 'x = "\\u0000"'),
  fc.string({ maxLength: 40 }),
)
const toml = fc.array(line, { maxLength: 12 }).map((lines) => lines.join("\n"))

const envName = fc.oneof(
  fc
    .tuple(fc.constantFrom(...sections), key)
    .map(([s, k]) => `CHIMERA_${s}_${k}`.toUpperCase().replace(/[^A-Z0-9_]/g, "_")),
  fc.constantFrom(
    "CHIMERA_RATE_LIMITS_API",
    "CHIMERA_AUTH_JWT_TTL_SECONDS",
    "CHIMERA_ITSM_API_KEY",
    "CHIMERA_WEB_PORT",
  ),
)
const env = fc.dictionary(envName, fc.oneof(value, fc.constant(SECRET)), { maxKeys: 4 })

function outcome(load: () => unknown): "ok" | "config-error" {
  try {
    load()
    return "ok"
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    expect(error.message).toStartWith("config: ")
    return "config-error"
  }
}

describe("hostile configuration", () => {
  test(`${RUNS} generated TOML files: a valid configuration or one ConfigError, nothing else`, async () => {
    const seen = new Set<string>()
    const path = join(dir, "chimera.toml")
    for (const text of fc.sample(toml, { numRuns: RUNS, seed: 4 })) {
      await writeFile(path, text)
      seen.add(outcome(() => loadConfig({ env: { CHIMERA_CONFIG_FILE: path } })))
    }
    expect([...seen].sort()).toEqual(["config-error", "ok"])
  })

  test(`${RUNS} generated environments: a valid configuration or one ConfigError; secrets never echoed`, () => {
    const seen = new Set<string>()
    for (const vars of fc.sample(env, { numRuns: RUNS, seed: 5 })) {
      try {
        loadConfig({ env: vars })
        seen.add("ok")
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error
        seen.add("config-error")
        // The API key's value must not be echoed (the same text under a non-secret name may be).
        const onlyAsKey = Object.entries(vars).every(([k, v]) => k === "CHIMERA_ITSM_API_KEY" || v !== SECRET)
        if (vars.CHIMERA_ITSM_API_KEY === SECRET && onlyAsKey) expect(error.message).not.toContain(SECRET)
      }
    }
    expect([...seen].sort()).toEqual(["config-error", "ok"])
  })
})
