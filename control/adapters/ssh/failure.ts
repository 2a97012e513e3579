// Why a target could not run a command, as one of RemoteFailure's kinds and a sentence an operator can
// act on. ssh2 reports failures as errors with a `level` (client-authentication, client-timeout) or a
// socket `code` (ECONNREFUSED…); host key verdicts come from our own verifier. Each message names the
// target and, where there is one, the way out (how to trust a host, which key was tried).
import type { RemoteFailureInfo, Target } from "../../domain/operation-ports.ts"
import type { HostKeyVerdict } from "./known-hosts.ts"
import { targetKey } from "./target.ts"

export type Failure = RemoteFailureInfo

/** A failure carried through a rejected promise (connect), turned back into a value by the executor. */
export class SshFailure extends Error {
  override readonly name = "SshFailure"
  constructor(readonly failure: Failure) {
    super(failure.message)
  }
}

const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: "connection refused (no SSH server listening)",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EADDRNOTAVAIL: "address not available",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed",
  ECONNRESET: "connection reset before the SSH handshake finished",
}

export function hostKeyFailure(t: Target, verdict: HostKeyVerdict, knownHostsPath: string): Failure | null {
  const where = `${t.host}${t.port === 22 ? "" : ` port ${t.port}`}`
  if (verdict.kind === "unknown") {
    const type = verdict.presented.split(" ")[0]?.replace(/^ssh-|^ecdsa-sha2-/, "") ?? "ed25519"
    return {
      kind: "unknown-host-key",
      message:
        `${t.name}: unknown host key ${verdict.presented} for ${where}, not in ${knownHostsPath}. ` +
        `To trust it, check the fingerprint out of band, then rerun with --trust-new-hosts (records it), ` +
        `or add it yourself: ssh-keyscan -p ${t.port} -t ${type} ${t.host} >> ${knownHostsPath}`,
    }
  }
  if (verdict.kind === "mismatch") {
    const recorded = verdict.recorded.length ? verdict.recorded.join(", ") : "no usable key"
    return {
      kind: "host-key-mismatch",
      message: verdict.revoked
        ? `${t.name}: host key ${verdict.presented} for ${where} is marked @revoked in ${knownHostsPath}; refusing to connect`
        : `${t.name}: HOST KEY MISMATCH for ${where}: it presented ${verdict.presented} but ${knownHostsPath} records ${recorded}. ` +
          `Refusing to connect (someone may be intercepting; if the host was reinstalled, remove the old key with ` +
          `ssh-keygen -R ${t.port === 22 ? t.host : `'[${t.host}]:${t.port}'`} -f ${knownHostsPath}, ` +
          `check the new key's fingerprint out of band and rerun with --trust-new-hosts)`,
    }
  }
  return null
}

export function timeoutFailure(t: Target, phase: "connect" | "command", ms: number): Failure {
  const what = phase === "connect" ? "no SSH handshake" : "the command did not finish"
  return { kind: "timeout", phase, message: `${t.name}: timed out after ${(ms / 1000).toFixed(1)} s (${what})` }
}

/** Classifies an error from ssh2's Client (connect or channel) for target `t`. */
export function classify(t: Target, error: unknown, keyDescription: string, timeoutMs: number): Failure {
  const e = error as Error & { level?: string; code?: string }
  const dest = targetKey(t)
  if (e.level === "client-authentication")
    return {
      kind: "auth-failed",
      message: `${t.name}: authentication failed for ${dest} (tried ${keyDescription}); is its public key in the node's authorized_keys?`,
    }
  if (e.level === "client-timeout") return timeoutFailure(t, "connect", timeoutMs)
  // We offer only the host key types known_hosts records for the host; a server with none of them
  // has changed its keys as far as we can tell.
  if (/no matching host key/i.test(e.message ?? ""))
    return {
      kind: "host-key-mismatch",
      message: `${t.name}: ${dest} offers none of the host key types recorded for it in known_hosts; refusing to connect`,
    }
  const reason = e.code ? UNREACHABLE[e.code] : undefined
  // A bare name that resolves nowhere was most likely meant as a node of the configuration's
  // inventory (resolveTargets tries a name it does not know as a host name).
  const unknownName =
    e.code === "ENOTFOUND" && t.name === t.host
      ? `; no node of the configuration in use is named "${t.name}" either (see [fleet.nodes] and CHIMERA_CONFIG_FILE)`
      : ""
  // A target named by its address says it once ("root@10.0.0.1:22: connection refused …"); a node name
  // is followed by where it led.
  const reach = t.name === dest ? "" : `cannot reach ${dest}: `
  if (reason) return { kind: "unreachable", message: `${t.name}: ${reach}${reason}${unknownName}` }
  return { kind: "error", message: `${t.name}: ${dest}: ${e.message ?? String(error)}` }
}
