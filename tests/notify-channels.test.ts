// The Slack and PagerDuty channels against local servers that check what those services check
// (tests/support/notify-servers.ts): the real wire format, each way a delivery can fail and what the
// outbox is told about it (retry or not, after how long), and that no error ever carries a secret.
import { describe, expect, test } from "bun:test"
import { createPagerDutyChannel } from "../control/adapters/notify/pagerduty.ts"
import { createSlackChannel } from "../control/adapters/notify/slack.ts"
import type { DeliveryFailure, DeliveryResult } from "../control/domain/notifications.ts"
import { freePort } from "./support/control-plane.ts"
import { CURRENT, DESIRED, notice } from "./support/notice.ts"
import { startPagerDuty, startSlack } from "./support/notify-servers.ts"

const HTTP = { timeoutMs: 10_000 }

function failed(result: DeliveryResult): DeliveryFailure {
  if (result.ok) throw new Error("expected the delivery to fail, but it succeeded")
  return result
}

describe("slack", () => {
  test("a notice arrives as Block Kit with node, problem, severity, both closures and a dashboard button", async () => {
    await using slack = startSlack()
    const result = await createSlackChannel({ webhookUrl: slack.webhookUrl }, HTTP).send(notice())
    expect(result).toEqual({ ok: true })
    const [message] = slack.messages()
    expect(slack.received[0]?.headers["content-type"]).toStartWith("application/json")
    const wire = JSON.stringify(message)
    for (const fact of ["web-1", "heal-failed", "critical", DESIRED, CURRENT, "nginx.service"])
      expect(wire).toContain(fact)
    expect(message?.blocks?.[0]).toEqual({
      type: "header",
      text: { type: "plain_text", text: "web-1: heal failed", emoji: true },
    })
    const actions = message?.blocks?.find((b) => b.type === "actions")
    expect(actions?.elements?.[0]?.url).toBe("http://127.0.0.1:8080/#/nodes/web-1")
    expect(message?.text).toContain("web-1: heal failed")
  })

  test("a resolution says so; text from nodes cannot mention @channel", async () => {
    await using slack = startSlack()
    const channel = createSlackChannel({ webhookUrl: slack.webhookUrl }, HTTP)
    expect((await channel.send(notice({ step: "resolved", node: "<!channel> & co" }))).ok).toBe(true)
    const wire = JSON.stringify(slack.messages()[0])
    expect(wire).toContain("Resolved: web-1: heal failed")
    expect(wire).toContain("&lt;!channel&gt; &amp; co")
    expect(wire).not.toContain("<!channel>")
  })

  test("a wrong webhook is not retried, and the error names Slack's answer but not the URL's secret path", async () => {
    await using slack = startSlack()
    const wrong = `${slack.url}/services/T0CHIMERA/B0CHIMERA/wrong-secret-token-000`
    const result = failed(await createSlackChannel({ webhookUrl: wrong }, HTTP).send(notice()))
    expect(result.retryable).toBe(false)
    expect(result.error).toBe(
      `slack: ${new URL(slack.url).host} answered 404 no_service: the webhook URL is wrong or was revoked`,
    )
    expect(result.error).not.toContain("wrong-secret-token")
  })

  test("a long error page that names the webhook's secret path near the cut loses none of it to the error", async () => {
    // A proxy's page, where the secret straddles the point the reason is clipped at (300 characters).
    for (const before of [270, 275, 279]) {
      const page = (secret: string) => `${"A".repeat(before)} /services/T0/B0/${secret} was not found on this server`
      const proxy = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        fetch: (req) => new Response(page(new URL(req.url).pathname.split("/").at(-1) ?? ""), { status: 404 }),
      })
      try {
        const webhookUrl = `http://127.0.0.1:${proxy.port}/services/T0/B0/SLACKSECRETXYZ`
        const result = failed(await createSlackChannel({ webhookUrl }, HTTP).send(notice()))
        for (let n = 4; n <= "SLACKSECRETXYZ".length; n++)
          expect(result.error).not.toContain("SLACKSECRETXYZ".slice(0, n))
      } finally {
        await proxy.stop(true)
      }
    }
  })

  test("an outage (500) is retried; a 429 is retried after its Retry-After, in seconds or as a date", async () => {
    await using slack = startSlack()
    const now = Date.parse("2026-12-06T04:00:00Z")
    const channel = createSlackChannel({ webhookUrl: slack.webhookUrl }, { ...HTTP, now: () => now })
    slack.failNext(1, { status: 500, body: "rollup_error" })
    slack.failNext(1, { status: 429, headers: { "retry-after": "7" }, body: "rate_limited" })
    slack.failNext(1, { status: 429, headers: { "retry-after": "Sun, 06 Dec 2026 04:00:30 GMT" } })
    const outage = failed(await channel.send(notice()))
    expect(outage).toMatchObject({ retryable: true })
    expect(outage.retryAfterMs).toBeUndefined()
    expect(outage.error).toContain("answered 500 rollup_error")
    expect(failed(await channel.send(notice()))).toMatchObject({ retryable: true, retryAfterMs: 7000 })
    expect(failed(await channel.send(notice()))).toMatchObject({ retryable: true, retryAfterMs: 30_000 })
    expect(await channel.send(notice())).toEqual({ ok: true })
    expect(slack.messages()).toHaveLength(1)
  })

  test("long texts are clipped to Block Kit's limits; a payload Slack still refuses is not retried", async () => {
    await using slack = startSlack()
    const channel = createSlackChannel({ webhookUrl: slack.webhookUrl }, HTTP)
    expect(await channel.send(notice({ title: "x".repeat(50_000), message: "y".repeat(10_000) }))).toEqual({ ok: true })
    const header = slack.messages()[0]?.blocks?.[0]
    expect(Array.from(header?.text?.text ?? "")).toHaveLength(150)
    // A title of control characters only would make an empty header, which Slack refuses: the
    // problem stands in for it.
    expect(await channel.send(notice({ title: "\u0007\n" }))).toEqual({ ok: true })
    expect(slack.messages()[1]?.blocks?.[0]?.text?.text).toBe("heal-failed")
    slack.failNext(1, { status: 400, body: "invalid_blocks" })
    const result = failed(await channel.send(notice()))
    expect(result.retryable).toBe(false)
    expect(result.error).toContain("answered 400 invalid_blocks")
  })

  test("nobody listening is retryable and named, without the webhook's path", async () => {
    const webhookUrl = `http://127.0.0.1:${freePort()}/services/T0/B0/secret-token-value`
    const result = failed(await createSlackChannel({ webhookUrl }, HTTP).send(notice()))
    expect(result.retryable).toBe(true)
    expect(result.error).toStartWith("slack: cannot reach 127.0.0.1:")
    expect(result.error).toContain("connection refused")
    expect(result.error).not.toContain("secret-token-value")
  })

  test("a server that never answers is given up on at the timeout, as retryable", async () => {
    const hang = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Promise<Response>(() => {}) })
    try {
      const webhookUrl = `http://127.0.0.1:${hang.port}/services/T0/B0/secret-token-value`
      const result = failed(await createSlackChannel({ webhookUrl }, { timeoutMs: 1000 }).send(notice()))
      expect(result).toMatchObject({ retryable: true })
      expect(result.error).toBe(`slack: no answer from 127.0.0.1:${hang.port} within 1 s`)
    } finally {
      await hang.stop(true)
    }
  })
})

describe("answers a channel cannot trust", () => {
  test("a Retry-After of a year is read as a day; an endless error body is cut off, not read to the end", async () => {
    let sent = 0
    const endless = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () =>
        new Response(
          new ReadableStream({
            pull(controller) {
              sent += 64 * 1024
              controller.enqueue(new Uint8Array(64 * 1024).fill(120))
            },
          }),
          { status: 503, headers: { "retry-after": String(365 * 24 * 3600) } },
        ),
    })
    try {
      const webhookUrl = `http://127.0.0.1:${endless.port}/services/T0/B0/secret-token-value`
      const result = failed(await createSlackChannel({ webhookUrl }, HTTP).send(notice()))
      expect(result).toMatchObject({ retryable: true, retryAfterMs: 24 * 3600 * 1000 })
      expect(result.error.length).toBeLessThan(400)
      expect(sent).toBeLessThan(16 * 1024 * 1024)
    } finally {
      await endless.stop(true)
    }
  })
})

describe("redirects", () => {
  test("a redirect is not followed (it would carry the routing key elsewhere) and is not retried", async () => {
    await using pd = startPagerDuty()
    const elsewhere = startPagerDuty()
    const redirecting = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response(null, { status: 307, headers: { location: elsewhere.enqueueUrl } }),
    })
    try {
      const url = `http://127.0.0.1:${redirecting.port}/v2/enqueue`
      const result = failed(await createPagerDutyChannel({ routingKey: pd.routingKey, url }, HTTP).send(notice()))
      expect(result.retryable).toBe(false)
      expect(result.error).toContain("answered 307")
      expect(result.error).toContain("the endpoint redirects (not followed")
      expect(elsewhere.received).toEqual([])
    } finally {
      await redirecting.stop(true)
      await elsewhere.stop()
    }
  })
})

describe("pagerduty", () => {
  test("an incident triggers one alert, repeats fold into it, and the resolution resolves it by dedup_key", async () => {
    await using pd = startPagerDuty()
    const channel = createPagerDutyChannel({ routingKey: pd.routingKey, url: pd.enqueueUrl }, HTTP)
    expect(await channel.send(notice())).toEqual({ ok: true, externalId: "chimera-inc-42" })
    expect(await channel.send(notice({ step: "updated", message: "second attempt failed too" }))).toEqual({
      ok: true,
      externalId: "chimera-inc-42",
    })
    expect(pd.alerts).toEqual(new Map([["chimera-inc-42", "triggered"]]))
    expect((await channel.send(notice({ step: "resolved" }))).ok).toBe(true)
    expect(pd.alerts).toEqual(new Map([["chimera-inc-42", "resolved"]]))
    const [trigger, , resolve] = pd.events()
    expect(trigger?.event_action).toBe("trigger")
    expect(trigger?.payload).toMatchObject({ source: "web-1", severity: "critical", summary: "web-1: heal failed" })
    expect(trigger?.payload?.custom_details).toMatchObject({ "Desired closure": DESIRED, "Current closure": CURRENT })
    expect(trigger?.links).toEqual([{ href: "http://127.0.0.1:8080/#/nodes/web-1", text: "Chimera dashboard" }])
    expect(resolve).toEqual({ routing_key: pd.routingKey, event_action: "resolve", dedup_key: "chimera-inc-42" })
  })

  test("severities map onto PagerDuty's (warning, info)", async () => {
    await using pd = startPagerDuty()
    const channel = createPagerDutyChannel({ routingKey: pd.routingKey, url: pd.enqueueUrl }, HTTP)
    await channel.send(notice({ incidentId: "a", severity: "warning" }))
    await channel.send(notice({ incidentId: "b", severity: "info", node: "" }))
    expect(pd.events().map((e) => [e.payload?.severity, e.payload?.source])).toEqual([
      ["warning", "web-1"],
      ["info", "chimera"],
    ])
  })

  test("a routing key PagerDuty does not know is not retried, and the key is not in the error", async () => {
    await using pd = startPagerDuty()
    const key = "WR0NGKEYWR0NGKEYWR0NGKEYWR0NGKEY"
    const result = failed(await createPagerDutyChannel({ routingKey: key, url: pd.enqueueUrl }, HTTP).send(notice()))
    expect(result.retryable).toBe(false)
    expect(result.error).toBe(
      `pagerduty: ${new URL(pd.url).host} answered 400 Event object is invalid: Invalid routing key: check notifications.pagerduty_api_key`,
    )
    expect(result.error).not.toContain(key)
  })

  test("throttling (429) and outages (502) are retried", async () => {
    await using pd = startPagerDuty()
    const channel = createPagerDutyChannel({ routingKey: pd.routingKey, url: pd.enqueueUrl }, HTTP)
    pd.failNext(1, { status: 429, headers: { "retry-after": "2" } })
    pd.failNext(1, { status: 502, body: "<html>bad gateway</html>" })
    expect(failed(await channel.send(notice()))).toMatchObject({ retryable: true, retryAfterMs: 2000 })
    const gateway = failed(await channel.send(notice()))
    expect(gateway).toMatchObject({ retryable: true })
    expect(gateway.error).toBe(`pagerduty: ${new URL(pd.url).host} answered 502 bad gateway`)
    expect((await channel.send(notice())).ok).toBe(true)
    expect(pd.events()).toHaveLength(1)
  })
})
