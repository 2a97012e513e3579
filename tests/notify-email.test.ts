// The email channel against a real SMTP server (Debian's aiosmtpd, tests/support/smtp-server.ts): a
// notice arrives with its facts, over STARTTLS when the server offers it, logged in when configured;
// each SMTP failure is read as the outbox needs it (4xx retry, 5xx and refused logins not), and the
// password never appears in an error.
import { describe, expect, test } from "bun:test"
import { createEmailChannel, type EmailSettings } from "../control/adapters/notify/email.ts"
import type { DeliveryFailure, DeliveryResult } from "../control/domain/notifications.ts"
import { freePort } from "./support/control-plane.ts"
import { claimAddresses } from "./support/loopback.ts"
import { CURRENT, DESIRED, notice } from "./support/notice.ts"
import { mailBody, type SmtpServer, startSmtp } from "./support/smtp-server.ts"

const TIMEOUT = { timeoutMs: 20_000 }
const PASSWORD = "smtp-Pa55word-never-shown"

function settings(smtp: Pick<SmtpServer, "host" | "port">, over: Partial<EmailSettings> = {}): EmailSettings {
  return {
    host: smtp.host,
    port: smtp.port,
    from: "chimera@example.org",
    to: ["ops@example.org", "oncall@example.org"],
    username: "",
    password: "",
    starttls: true,
    ca: "",
    ...over,
  }
}

function failed(result: DeliveryResult): DeliveryFailure {
  if (result.ok) throw new Error("expected the delivery to fail, but it succeeded")
  return result
}

describe("email", () => {
  test("a notice reaches every recipient with the same facts as the other channels", async () => {
    await using smtp = await startSmtp()
    const result = await createEmailChannel(settings(smtp), TIMEOUT).send(notice())
    expect(result).toEqual({ ok: true, externalId: "<chimera.inc-42.opened@chimera.invalid>" })
    const [mail] = await smtp.messages()
    expect(mail?.mail_from).toBe("chimera@example.org")
    expect(mail?.rcpt_tos).toEqual(["ops@example.org", "oncall@example.org"])
    expect(mail?.tls).toBe(false)
    expect(mail?.data).toContain("Subject: [Chimera critical] web-1: heal failed")
    expect(mail?.data).toContain("Message-ID: <chimera.inc-42.opened@chimera.invalid>")
    const body = mail ? mailBody(mail) : ""
    for (const fact of ["Node: web-1", "Problem: heal-failed", "Severity: critical", "nginx.service"])
      expect(body).toContain(fact)
    expect(body).toContain(`Desired closure: ${DESIRED}`)
    expect(body).toContain(`Current closure: ${CURRENT}`)
    expect(body).toContain("Dashboard: http://127.0.0.1:8080/#/nodes/web-1")
  })

  test("updates and the resolution answer the opening message; each update has its own Message-ID", async () => {
    await using smtp = await startSmtp()
    const channel = createEmailChannel(settings(smtp), TIMEOUT)
    await channel.send(notice({ step: "updated", at: "2026-12-06T04:01:00.000Z" }))
    await channel.send(notice({ step: "updated", at: "2026-12-06T04:02:00.000Z" }))
    await channel.send(notice({ step: "resolved" }))
    const [first, second, resolved] = await smtp.messages()
    const id = (m: typeof first) => /^Message-ID: (.*)$/m.exec(m?.data ?? "")?.[1]?.trim()
    expect(id(first)).toBe("<chimera.inc-42.updated.20261206040100000@chimera.invalid>")
    expect(id(second)).toBe("<chimera.inc-42.updated.20261206040200000@chimera.invalid>")
    expect(resolved?.data).toContain("Subject: [Chimera critical] Resolved: web-1: heal failed")
    for (const m of [first, second, resolved])
      expect(m?.data).toContain("In-Reply-To: <chimera.inc-42.opened@chimera.invalid>")
  })

  test("STARTTLS is used when offered, and the login happens inside it", async () => {
    await using smtp = await startSmtp({ tls: true, auth: { user: "chimera", password: PASSWORD } })
    const ca = await Bun.file(smtp.caFile).text()
    const from = "Chimera <chimera@example.org>"
    const channel = createEmailChannel(settings(smtp, { username: "chimera", password: PASSWORD, ca, from }), TIMEOUT)
    expect((await channel.send(notice())).ok).toBe(true)
    const [mail] = await smtp.messages()
    expect(mail).toMatchObject({ tls: true, auth_user: "chimera", mail_from: "chimera@example.org" })
    expect(mail?.data).toContain("From: Chimera <chimera@example.org>")
  })

  test("port 465 speaks TLS from the first byte, and logs in inside it", async () => {
    const [claim] = claimAddresses(1)
    if (!claim) throw new Error("no loopback address claimed")
    try {
      await using smtp = await startSmtp({ smtpsOn: claim.address, auth: { user: "chimera", password: PASSWORD } })
      expect(smtp.port).toBe(465)
      const ca = await Bun.file(smtp.caFile).text()
      const channel = createEmailChannel(settings(smtp, { username: "chimera", password: PASSWORD, ca }), TIMEOUT)
      expect((await channel.send(notice())).ok).toBe(true)
      expect((await smtp.messages())[0]).toMatchObject({ tls: true, auth_user: "chimera" })
    } finally {
      claim.release()
    }
  })

  test("a wrong password is not retried, and the error names the server but not the password", async () => {
    await using smtp = await startSmtp({ tls: true, auth: { user: "chimera", password: PASSWORD } })
    const ca = await Bun.file(smtp.caFile).text()
    const wrong = "wrong-Pa55word-never-shown"
    const result = failed(
      await createEmailChannel(settings(smtp, { username: "chimera", password: wrong, ca }), TIMEOUT).send(notice()),
    )
    expect(result.retryable).toBe(false)
    expect(result.error).toStartWith(`email: 127.0.0.1:${smtp.port} refused the login: 535`)
    expect(result.error).toContain("check notifications.email_username and email_password")
    expect(result.error).not.toContain(wrong)
    expect(await smtp.messages()).toEqual([])
  })

  test("a certificate nobody vouches for stops the delivery, not retried, and says why", async () => {
    await using smtp = await startSmtp({ tls: true, auth: { user: "chimera", password: PASSWORD } })
    const result = failed(
      await createEmailChannel(settings(smtp, { username: "chimera", password: PASSWORD }), TIMEOUT).send(notice()),
    )
    expect(result.retryable).toBe(false)
    expect(result.error).toContain("TLS with 127.0.0.1")
    expect(result.error).toContain("notifications.email_ca_file")
    expect(result.error).not.toContain(PASSWORD)
  })

  test("a password is never offered to a server without STARTTLS", async () => {
    await using smtp = await startSmtp()
    const result = failed(
      await createEmailChannel(settings(smtp, { username: "chimera", password: PASSWORD }), TIMEOUT).send(notice()),
    )
    expect(result.retryable).toBe(false)
    expect(result.error).toStartWith(`email: 127.0.0.1:${smtp.port} does not offer STARTTLS`)
    expect(result.error).toContain("the password is never sent in clear")
    expect(result.error).not.toContain(PASSWORD)
    expect(await smtp.messages()).toEqual([])
  })

  test("a 451 for a recipient is retried, a 550 is not", async () => {
    await using smtp = await startSmtp()
    const deferred = failed(
      await createEmailChannel(settings(smtp, { to: ["defer@example.org"] }), TIMEOUT).send(notice()),
    )
    expect(deferred.retryable).toBe(true)
    expect(deferred.error).toContain("451")
    const rejected = failed(
      await createEmailChannel(settings(smtp, { to: ["reject@example.org"] }), TIMEOUT).send(notice()),
    )
    expect(rejected.retryable).toBe(false)
    expect(rejected.error).toContain("550")
  })

  test("a server slow at every step is given up on after the whole timeout, as retryable", async () => {
    await using smtp = await startSmtp()
    const to = ["slow1@example.org", "slow2@example.org", "slow3@example.org", "slow4@example.org"]
    const result = failed(await createEmailChannel(settings(smtp, { to }), { timeoutMs: 1000 }).send(notice()))
    expect(result).toEqual({
      ok: false,
      retryable: true,
      error: `email: 127.0.0.1:${smtp.port} did not finish within 1 s`,
    })
  })

  test("no server listening is retried and named", async () => {
    const port = freePort()
    const result = failed(await createEmailChannel(settings({ host: "127.0.0.1", port }), TIMEOUT).send(notice()))
    expect(result.retryable).toBe(true)
    expect(result.error).toStartWith(`email: cannot reach 127.0.0.1:${port}`)
  })
})
