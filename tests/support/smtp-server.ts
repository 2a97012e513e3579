// A real SMTP server per test: Debian's aiosmtpd, run by smtp_store.py beside this file, on 127.0.0.1
// with a port the kernel picks. With `tls` it offers STARTTLS with a fresh self-signed certificate for
// 127.0.0.1 (made with openssl; `caFile` is what a client must trust); with `smtpsOn` it speaks TLS
// from the first byte on that (claimed) address's port 465; with `auth` it requires a login, and
// accepts one only over TLS. Every accepted message is read back with its envelope, whether it came
// encrypted, and who logged in. A missing aiosmtpd or openssl fails the test with the package to install.
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { requireTool, runOk } from "./tools.ts"

export interface StoredMail {
  mail_from: string
  rcpt_tos: string[]
  /** The message as it arrived: headers, a blank line, the body. */
  data: string
  tls: boolean
  auth_user: string | null
}

export interface SmtpServer extends AsyncDisposable {
  host: string
  port: number
  /** The self-signed certificate (PEM file) when started with TLS, else "". */
  caFile: string
  messages(): Promise<StoredMail[]>
  stop(): Promise<void>
}

const SCRIPT = join(import.meta.dir, "smtp_store.py")
const PYTHON = "/usr/bin/python3"

export async function startSmtp(
  opts: {
    tls?: boolean
    auth?: { user: string; password: string }
    /** TLS from the first byte (SMTPS) on this address's port 465, instead of STARTTLS on a free port. */
    smtpsOn?: string
  } = {},
): Promise<SmtpServer> {
  requireTool("aiosmtpd")
  const dir = await mkdtemp(join(tmpdir(), "chimera-smtp-"))
  const out = join(dir, "mail")
  await mkdir(out)
  const args = [PYTHON, SCRIPT, out]
  let caFile = ""
  if (opts.tls || opts.smtpsOn) {
    const openssl = requireTool("openssl")
    caFile = join(dir, "cert.pem")
    const key = join(dir, "key.pem")
    await runOk([
      openssl,
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      caFile,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      `subjectAltName=IP:${opts.smtpsOn ?? "127.0.0.1"}`,
    ])
    args.push("--tls-cert", caFile, "--tls-key", key)
  }
  if (opts.smtpsOn) args.push("--smtps", "--host", opts.smtpsOn, "--port", "465")
  if (opts.auth) args.push("--user", opts.auth.user, "--password", opts.auth.password)
  const proc = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" })
  const port = await _readyPort(proc)
  const stop = async () => {
    proc.kill("SIGTERM")
    await proc.exited
    await rm(dir, { recursive: true, force: true })
  }
  return {
    host: opts.smtpsOn ?? "127.0.0.1",
    port,
    caFile,
    async messages() {
      const names = (await readdir(out)).filter((n) => n.endsWith(".json")).sort()
      return Promise.all(names.map(async (n) => JSON.parse(await readFile(join(out, n), "utf8")) as StoredMail))
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

/** The body of a stored message as text: quoted-printable (nodemailer's choice for long lines) decoded. */
export function mailBody(mail: StoredMail): string {
  const [head = "", ...rest] = mail.data.split(/\r?\n\r?\n/)
  const body = rest.join("\n\n")
  if (!/^Content-Transfer-Encoding:\s*quoted-printable/im.test(head)) return body.replaceAll("\r\n", "\n")
  const bytes = body
    .replace(/=\r?\n/g, "")
    .replaceAll("\r\n", "\n")
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
  return Buffer.from(bytes, "latin1").toString("utf8")
}

/** Waits for "READY <port>" on the server's stdout; if it exits first, fails with its stderr. */
async function _readyPort(proc: Bun.Subprocess<"ignore", "pipe", "pipe">): Promise<number> {
  const reader = proc.stdout.getReader()
  let seen = ""
  for (;;) {
    const { value, done } = await reader.read()
    if (done) {
      const stderr = await new Response(proc.stderr).text()
      throw new Error(`the SMTP server (aiosmtpd) exited before it listened: ${stderr.trim()}`)
    }
    seen += new TextDecoder().decode(value)
    const match = /READY (\d+)/.exec(seen)
    if (match) {
      reader.releaseLock()
      return Number(match[1])
    }
  }
}
