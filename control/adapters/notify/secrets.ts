// Reads a secret given either in the configuration itself or as a file beside it (`api_key_file`), the
// way systemd credentials, Kubernetes secrets and agenix hand them over. The file holds the secret on
// its first line; a trailing newline is not part of it. An unreadable or empty file fails the start,
// naming the field and the file, never the content.
import { readFileSync } from "node:fs"
import { ConfigError } from "../../config.ts"

/** The secret at `field`: its value if set, else the content of `file`, else "". */
export function readSecret(field: string, value: string, file: string): string {
  if (value !== "" || file === "") return value
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message
    throw new ConfigError(`config: ${field}_file: cannot read ${file}: ${reason}`)
  }
  const secret = text.replace(/\r?\n$/, "")
  if (secret.trim() === "") throw new ConfigError(`config: ${field}_file: ${file} is empty`)
  if (secret.includes("\n")) throw new ConfigError(`config: ${field}_file: ${file} holds more than one line`)
  return secret
}

/** A PEM file's content, or "" when none is named. */
export function readPem(field: string, file: string): string {
  if (file === "") return ""
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message
    throw new ConfigError(`config: ${field}: cannot read ${file}: ${reason}`)
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----"))
    throw new ConfigError(`config: ${field}: ${file} holds no PEM certificate`)
  return text
}
