import { describe, expect, test } from "bun:test"
import { ConfigError, loadConfig } from "./config.ts"
import { trustSettings } from "./trust.ts"

describe("trust configuration", () => {
  test("defaults: one-hour tokens, 10 CLI sessions, 30-day node credentials, limits per one-minute window", () => {
    const settings = trustSettings(loadConfig({ env: {} }))
    expect(settings.jwtTtlSeconds).toBe(3600)
    expect(settings.sessionLimit).toBe(10)
    expect(settings.nodeCredentialRotationDays).toBe(30)
    expect(settings.rateLimits).toEqual({
      api: { limit: 300, windowMs: 60_000 },
      agent: { limit: 1200, windowMs: 60_000 },
      login: { limit: 10, windowMs: 60_000 },
      enroll: { limit: 20, windowMs: 60_000 },
      sessions: { limit: 10, windowMs: 60_000 },
      commands: { limit: 60, windowMs: 60_000 },
      websocket: { limit: 100, windowMs: 60_000 },
      chat: { limit: 30, windowMs: 60_000 },
      records: { limit: 2000, windowMs: 60_000 },
    })
  })

  test("limits, the window and rotation are set from the environment like any other setting", () => {
    const config = loadConfig({
      env: {
        CHIMERA_RATE_LIMITS_API: "50",
        CHIMERA_RATE_LIMITS_WINDOW_SECONDS: "10",
        CHIMERA_AUTH_NODE_CREDENTIAL_ROTATION_DAYS: "0",
      },
    })
    const settings = trustSettings(config)
    expect(settings.rateLimits.api).toEqual({ limit: 50, windowMs: 10_000 })
    expect(settings.rateLimits.agent).toEqual({ limit: 1200, windowMs: 10_000 })
    expect(settings.nodeCredentialRotationDays).toBe(0)
  })

  test("a bad limit fails at start with its path and source", () => {
    expect(() => loadConfig({ env: { CHIMERA_RATE_LIMITS_API: "0" } })).toThrow(ConfigError)
    expect(() => loadConfig({ env: { CHIMERA_RATE_LIMITS_API: "0" } })).toThrow(
      "rate_limits.api: expected a whole number of requests, at least 1, got 0 (from CHIMERA_RATE_LIMITS_API)",
    )
    expect(() => loadConfig({ env: { CHIMERA_AUTH_JWT_TTL_SECONDS: "30" } })).toThrow("auth.jwt_ttl_seconds")
    expect(() => loadConfig({ env: { CHIMERA_RATE_LIMITS_APII: "5" } })).toThrow("rate_limits.apii: unknown setting")
  })
})
