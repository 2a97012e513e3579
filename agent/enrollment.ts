// Enrollment: a node trades a join token (single use, short-lived) for its own credential once, and
// keeps that credential in the state dir (0600) for every later start. The join token is never stored
// and never logged. While enrollment fails the agent keeps enforcing its desired closure locally;
// enrollment is retried with backoff (a control plane that is down comes back; a refused token is
// logged as such, because only an operator can fix that). A join token given beside a stored
// credential enrols the node again when the control plane takes it: that is how a revoked node returns.
import type { NodeId } from "../protocol/ids.ts"
import { createLogger, displayUrl } from "../protocol/log.ts"
import { newSecret, secretHash } from "../protocol/secrets.ts"
import { VERSION } from "../protocol/version.ts"
import { createBackoff, sleep } from "./backoff.ts"
import { ControlError, type OrchestratorPort } from "./control-client.ts"
import type { StateDir } from "./state-dir.ts"

const log = createLogger("enroll")

export class EnrollmentError extends Error {
  readonly code = "E_ENROLL"
  constructor(message: string) {
    super(message)
    this.name = "EnrollmentError"
  }
}

/** The stored credential for `nodeId`; throws when there is none and no join token to get one. */
export function storedCredential(stateDir: StateDir, nodeId: NodeId, joinToken: string | null): string | null {
  const stored = stateDir.readCredential()
  if (stored && stored.nodeId !== nodeId)
    throw new EnrollmentError(
      `${stateDir.path}/credential.json belongs to node ${stored.nodeId}, not ${nodeId}; use another --state-dir or remove it and enroll again`,
    )
  if (stored) return stored.credential
  if (joinToken === null)
    throw new EnrollmentError(
      `node ${nodeId} is not enrolled (no credential in ${stateDir.path}) and no join token was given: pass --join-token-file PATH (- for stdin) or CHIMERA_JOIN_TOKEN (create one with \`chimera nodes join-token\`)`,
    )
  return null
}

export interface EnrollInput {
  client: OrchestratorPort
  stateDir: StateDir
  nodeId: NodeId
  joinToken: string
  controlUrl: string
  hostname: string
  signal: AbortSignal
}

/**
 * Enrolls, retrying with backoff until it succeeds or `signal` aborts (then null). The credential is
 * made here and stored (enrolling.json, durably) before the first attempt; only its hash is sent. If
 * an answer is lost after the control plane took the join token, the next attempt (or the next start)
 * repeats the same enrolment with the same credential, which the control plane recognises: a used join
 * token never strands the node.
 */
export async function enroll(input: EnrollInput): Promise<string | null> {
  const backoff = createBackoff({ initialMs: 1000, maxMs: 300_000, jitter: "full" })
  const credential = _pendingCredential(input)
  while (!input.signal.aborted) {
    try {
      return await _attempt(input, credential)
    } catch (err) {
      const retryInMs = backoff.next()
      const error = err instanceof Error ? err.message : String(err)
      // Retried all the same: the control plane may have been restored from a backup that knows it.
      if (err instanceof ControlError && err.refused)
        log.error(
          `join token refused (expired, already used or wrong?): make a new one with \`chimera nodes join-token --node ${input.nodeId}\` and restart the agent with it`,
          { error, retryInMs },
        )
      else log.warn("enrollment failed; still enforcing locally", { error, retryInMs })
      await sleep(retryInMs, input.signal)
    }
  }
  return null
}

/**
 * A join token given beside a stored credential: the operator enrols the node again (after `chimera
 * nodes revoke`, whose credential the control plane refuses for good). A token the control plane
 * refuses (a restart with the same CHIMERA_JOIN_TOKEN, already used or expired) keeps the stored
 * credential. Without an answer (the control plane down at a boot before the network, overloaded, or
 * its answer lost after it took the token, when only the new credential works) the agent starts with
 * the stored credential and asks again in the background, with the same credential, until an answer
 * comes; `use` hears the new credential if it is taken. Heartbeats never wait for that: a control
 * plane that refuses enrolments for a while (its audit log full) must not make the node look dead.
 */
export async function enrollAgain(
  input: EnrollInput,
  stored: string,
  use: (credential: string) => void,
): Promise<string> {
  const credential = _pendingCredential(input)
  const first = await _askAgain(input, credential)
  if (first !== UNANSWERED) return first ?? stored
  void (async () => {
    const backoff = createBackoff({ initialMs: 1000, maxMs: 60_000, jitter: "full" })
    while (!input.signal.aborted) {
      await sleep(backoff.next(), input.signal)
      if (input.signal.aborted) return
      const next = await _askAgain(input, credential)
      if (next === UNANSWERED) continue
      if (next !== null) use(next)
      return
    }
  })()
  return stored
}

const UNANSWERED = Symbol("unanswered")

/** One attempt: the new credential, null when refused (the stored one stays), or UNANSWERED. */
async function _askAgain(input: EnrollInput, credential: string): Promise<string | null | typeof UNANSWERED> {
  try {
    const taken = await _attempt(input, credential)
    log.info("enrolled again with the join token given; the stored credential is replaced", { nodeId: input.nodeId })
    return taken
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err)
    // An answer that means it; not a failure to reach the control plane, an overload or its own error.
    if (err instanceof ControlError && err.status !== null && err.status < 500 && err.status !== 429) {
      log.warn("the join token given was not taken; the stored credential stays in use", {
        nodeId: input.nodeId,
        error,
      })
      return null
    }
    log.warn("enrolling again with the join token given got no answer; the stored credential is used meanwhile", {
      nodeId: input.nodeId,
      error,
    })
    return UNANSWERED
  }
}

/** The credential being enrolled: one a lost answer left pending, or a new one, stored before it is sent. */
function _pendingCredential(input: EnrollInput): string {
  const pending = input.stateDir.readPendingEnrolment()
  const credential = pending?.nodeId === input.nodeId ? pending.credential : newSecret("node")
  if (pending?.credential !== credential) input.stateDir.writePendingEnrolment({ nodeId: input.nodeId, credential })
  return credential
}

async function _attempt(input: EnrollInput, credential: string): Promise<string> {
  const res = await input.client.enroll(input.joinToken, {
    nodeId: input.nodeId,
    hostname: input.hostname,
    agentVersion: VERSION,
    credentialHash: secretHash(credential),
  })
  if (res.nodeId !== input.nodeId) throw new ControlError(`enrolled as ${res.nodeId}, asked for ${input.nodeId}`, 201)
  input.stateDir.writeCredential({
    nodeId: res.nodeId,
    credential,
    controlUrl: input.controlUrl,
    enrolledAt: new Date().toISOString(),
  })
  input.stateDir.clearPendingEnrolment()
  log.info("enrolled", { nodeId: res.nodeId, controlUrl: displayUrl(input.controlUrl) })
  return credential
}
