// What the configuration turns on, and how a secret file that cannot be used stops the start.
import { describe, expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigError } from "../../config.ts"
import { ChimeraConfig } from "../../config-schema.ts"
import { channelsFromConfig } from "./index.ts"

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await mkdtemp(join(tmpdir(), "chimera-channels-"))
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) }
}

const configOf = (input: Record<string, unknown>) => ChimeraConfig.parse(input)

function configError(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as Error).message
  }
  throw new Error("expected a ConfigError")
}

describe("channelsFromConfig", () => {
  test("nothing configured: no channel and no ticket system", () => {
    expect(channelsFromConfig(configOf({}))).toEqual({ channels: [], tickets: null })
  })

  test("each channel whose settings are present is built, secrets read from their files", async () => {
    await using dir = await tempDir()
    const hook = join(dir.path, "slack")
    const key = join(dir.path, "jira")
    await writeFile(hook, "https://hooks.slack.com/services/T0/B0/secret\n")
    await writeFile(key, "jira-token\n")
    const { channels, tickets } = channelsFromConfig(
      configOf({
        notifications: {
          slack_webhook_url_file: hook,
          pagerduty_api_key: "R0UT1NGKEY",
          email_smtp_host: "127.0.0.1",
          email_from: "chimera@example.org",
          email_to: "ops@example.org",
        },
        itsm: {
          provider: "jira",
          url: "https://example.atlassian.net",
          username: "ops@example.org",
          api_key_file: key,
          project_key: "OPS",
        },
      }),
    )
    expect(channels.map((c) => c.name)).toEqual(["slack", "pagerduty", "email"])
    expect(tickets?.name).toBe("jira")
  })

  test("an unreadable, empty or multi-line secret file stops the start with the field named, not the content", async () => {
    await using dir = await tempDir()
    const itsm = (file: string) => ({
      itsm: { provider: "servicenow", url: "https://x.service-now.com", username: "u", api_key_file: file },
    })
    expect(configError(() => channelsFromConfig(configOf(itsm(join(dir.path, "absent")))))).toBe(
      `config: itsm.api_key_file: cannot read ${join(dir.path, "absent")}: no such file`,
    )
    const empty = join(dir.path, "empty")
    await writeFile(empty, "\n")
    expect(configError(() => channelsFromConfig(configOf(itsm(empty))))).toBe(
      `config: itsm.api_key_file: ${empty} is empty`,
    )
    const two = join(dir.path, "two")
    await writeFile(two, "first-secret-line\nsecond-secret-line\n")
    const message = configError(() => channelsFromConfig(configOf(itsm(two))))
    expect(message).toBe(`config: itsm.api_key_file: ${two} holds more than one line`)
  })

  test("a webhook file whose URL would carry the secret in clear, or a CA file without a certificate, is refused", async () => {
    await using dir = await tempDir()
    const hook = join(dir.path, "hook")
    await writeFile(hook, "http://hooks.slack.com/services/T0/B0/secret-path\n")
    const message = configError(() => channelsFromConfig(configOf({ notifications: { slack_webhook_url_file: hook } })))
    expect(message).toBe(
      "config: notifications.slack_webhook_url_file: expected an https URL (http only to a loopback address) in the file",
    )
    expect(message).not.toContain("secret-path")
    const ca = join(dir.path, "ca.pem")
    await writeFile(ca, "not a certificate")
    const email = {
      email_smtp_host: "127.0.0.1",
      email_from: "chimera@example.org",
      email_to: "ops@example.org",
      email_ca_file: ca,
    }
    expect(configError(() => channelsFromConfig(configOf({ notifications: email })))).toBe(
      `config: notifications.email_ca_file: ${ca} holds no PEM certificate`,
    )
  })
})
