// Email over SMTP with nodemailer: a plain-text message per notice, from the configured sender to the
// configured recipients. STARTTLS is used whenever the server offers it, and required when a password
// is to be sent (so it never crosses in clear); port 465 speaks TLS from the first byte. The Message-ID
// is derived from the incident and step, and updates and the resolution refer to the opening message,
// so a retried delivery is recognisable as the same message and a thread stays one thread in a mail
// client. SMTP's own codes decide retries: 4xx is transient (greylisting, a full queue), 5xx is
// permanent; a refused login or a certificate that does not verify needs a person.
import { rootCertificates } from "node:tls"
import nodemailer from "nodemailer"
import type { DeliveryResult, Notice, NotificationChannel } from "../../domain/notifications.ts"
import { scrub } from "./http.ts"
import { headline, plainText } from "./notice-text.ts"

export interface EmailSettings {
  host: string
  port: number
  from: string
  to: string[]
  username: string
  password: string
  starttls: boolean
  /** PEM certificates to trust besides the system's; "" for none. */
  ca: string
}

export function createEmailChannel(settings: EmailSettings, options: { timeoutMs: number }): NotificationChannel {
  const implicitTls = settings.port === 465
  const transport = nodemailer.createTransport({
    host: settings.host,
    port: settings.port,
    secure: implicitTls,
    ignoreTLS: !settings.starttls && !implicitTls,
    requireTLS: settings.starttls && settings.password !== "",
    auth: settings.username !== "" ? { user: settings.username, pass: settings.password } : undefined,
    // Node's `ca` replaces the built-in roots; the configured certificates are meant to add to them.
    tls: settings.ca !== "" ? { ca: [...rootCertificates, settings.ca] } : undefined,
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    // One connection per message: deliveries are rare, and a pooled one would outlive its server.
    pool: false,
  })
  const secrets = [settings.password]
  return {
    name: "email",
    async send(notice: Notice): Promise<DeliveryResult> {
      try {
        const opening = messageId(notice.incidentId, "opened")
        const sending = transport.sendMail({
          from: settings.from,
          to: settings.to,
          subject: `[Chimera ${notice.severity}] ${headline(notice)}`,
          text: plainText(notice),
          messageId: messageId(notice.incidentId, notice.step, notice.at),
          ...(notice.step === "updated" || notice.step === "resolved"
            ? { inReplyTo: opening, references: [opening] }
            : {}),
          headers: { "X-Chimera-Incident": notice.incidentId, "X-Chimera-Step": notice.step },
        })
        // nodemailer bounds each phase (connect, greeting, each reply) but not the whole exchange; a
        // server that answers slowly at every step would hold a delivery far past its timeout.
        let timer: ReturnType<typeof setTimeout> | undefined
        const late = new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), options.timeoutMs)
        })
        const info = await Promise.race([sending, late]).finally(() => clearTimeout(timer))
        if (info === null) {
          sending.catch(() => {}) // its failure, if it comes, is no longer anyone's to hear
          const within = Number((options.timeoutMs / 1000).toFixed(1))
          return {
            ok: false,
            retryable: true,
            error: `email: ${settings.host}:${settings.port} did not finish within ${within} s`,
          }
        }
        return { ok: true, externalId: info.messageId }
      } catch (err) {
        return emailFailure(err, settings, secrets)
      }
    },
  }
}

/**
 * A stable Message-ID for one delivery (RFC 5322 msg-id: no spaces or <> on the left). An incident
 * opens and resolves once, but may be updated many times: each update is told apart by its time, so a
 * mail client does not fold a later update into an earlier one as a duplicate.
 */
export function messageId(incidentId: string, step: Notice["step"], at = ""): string {
  const id = incidentId.replace(/[^A-Za-z0-9._-]/g, (c) => `=${c.charCodeAt(0).toString(16)}`)
  const when = step === "updated" ? `.${at.replace(/\D/g, "")}` : ""
  return `<chimera.${id}.${step}${when}@chimera.invalid>`
}

function emailFailure(err: unknown, settings: EmailSettings, secrets: string[]): DeliveryResult {
  const e = err as { code?: string; responseCode?: number; response?: string; message?: string }
  const server = `${settings.host}:${settings.port}`
  const reply = e.response ? `: ${e.response}` : ""
  let retryable = true
  let what: string
  switch (e.code) {
    case "EAUTH":
      retryable = false
      what = `${server} refused the login${reply}: check notifications.email_username and email_password`
      break
    case "ETLS":
      retryable = false
      what = /STARTTLS/.test(e.message ?? "")
        ? `${server} does not offer STARTTLS${reply}, and the password is never sent in clear: enable TLS on the server, or use port 465`
        : `TLS with ${server} failed (${e.message ?? "handshake"}): check the certificate or notifications.email_ca_file`
      break
    case "EDNS":
      what = `cannot reach ${server}: host not found`
      break
    case "ECONNECTION":
    case "ETIMEDOUT":
    case "ESOCKET":
      retryable = !/certificate|self.signed|CERT_/i.test(e.message ?? "")
      what = retryable
        ? `cannot reach ${server}: ${e.message ?? e.code}`
        : `TLS with ${server} failed (${e.message}): check the certificate or notifications.email_ca_file`
      break
    case "EENVELOPE":
    case "EMESSAGE":
      retryable = e.responseCode !== undefined && e.responseCode < 500
      what = `${server} refused the message${reply}`
      break
    default:
      retryable = e.responseCode === undefined || e.responseCode < 500
      what = `${server} failed: ${e.message ?? String(err)}`
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: an SMTP reply must not drive the terminal
  const flat = what.replace(/[\u0000-\u001f\u007f]+/g, " ")
  return { ok: false, retryable, error: scrub(`email: ${flat}`, secrets) }
}
