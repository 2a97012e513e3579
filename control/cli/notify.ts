// `chimera notify test [--channel slack|pagerduty|email|itsm] [--json]`: asks the control plane to send
// a test notice through each configured channel (or the one named) and prints one line per channel:
// ok, or the channel's own error (what the service answered, never a secret). The exit status is 1 when
// any channel failed or none is configured, so a deployment script can check its alerting.
import { defineCommand } from "citty"
import { z } from "zod"
import type { ChannelOutcome } from "../domain/notify-test.ts"
import { apiClient, call } from "./client.ts"
import { CliError } from "./errors.ts"
import { color, field, printJson, say, warn } from "./output.ts"

const Channel = z.enum(["slack", "pagerduty", "email", "itsm"], {
  error: 'expected "slack", "pagerduty", "email" or "itsm"',
})

const test = defineCommand({
  meta: { name: "test", description: "Send a test notice through each configured channel and say what each answered" },
  args: {
    channel: { type: "string", description: "Only this channel: slack, pagerduty, email or itsm" },
    json: { type: "boolean", description: "Print JSON" },
  },
  async run({ args }) {
    const parsed = args.channel === undefined ? undefined : Channel.safeParse(args.channel)
    if (parsed && !parsed.success) throw new CliError(`--channel: ${parsed.error.issues[0]?.message}`, "E_ARG")
    const { url, client } = apiClient()
    const { results } = (await call(url, client.api.notifications.test.$post({ json: { channel: parsed?.data } }))) as {
      results: ChannelOutcome[]
    }
    if (results.some((r) => !r.ok) || results.length === 0) process.exitCode = 1
    // With nothing configured the exit status is 1 in both forms, and the reason goes to stderr in both:
    // an empty list alone would leave a script's author guessing why.
    if (results.length === 0) warn("No channel is configured: set [notifications] or [itsm] (docs/configuration.md).\n")
    if (args.json) return printJson({ results })
    if (results.length === 0) return
    const width = Math.max(...results.map((r) => _name(r).length))
    for (const r of results) {
      const mark = r.ok ? color.green("ok") : color.red("failed")
      say(`${_name(r).padEnd(width)}  ${mark}  ${field(r.detail)}\n`)
    }
  },
})

const _name = (r: ChannelOutcome) => (r.channel === "itsm" ? `itsm (${r.service})` : r.channel)

export default defineCommand({
  meta: {
    name: "notify",
    description: "Notification channels: send a test notice through each and see what it answered",
  },
  subCommands: { test },
})
