// Ports for operating a fleet from the control plane's side: Nix on the operator's machine,
// persistent tmux sessions, and remote execution over SSH. Adapters in control/adapters implement
// them with the real tools; deploy, rollback and watch (control/domain) depend only on these.
import type { NixHash, SessionId, StorePath } from "../../protocol/ids.ts"

// ---- NixPort -------------------------------------------------------------------------------------

export interface BuildResult {
  outPath: StorePath
  hash: NixHash
  /** True when the closure has bin/switch-to-configuration (a NixOS system). */
  isSystem: boolean
}

export interface ClosureSize {
  paths: number
  narBytes: number
}

export interface NixPort {
  /** nix-build PATH (no result link); the closure's store path and hash. */
  build(configPath: string): Promise<BuildResult>
  /** nix-instantiate PATH: the .drv path. */
  instantiate(configPath: string): Promise<string>
  /** Runs COMMAND inside `nix-shell PATH` and returns its output (throws with stderr on failure). */
  shell(configPath: string, command: string): Promise<string>
  /** Paths and NAR bytes of the closure of `path` (for a deploy plan). */
  closureSize(path: StorePath): Promise<ClosureSize>
  /** Every path in the closure of `path` with its NAR size (`nix-store -q --requisites`, `--size`). */
  requisites(path: StorePath): Promise<{ path: StorePath; narBytes: number }[]>
}

/**
 * Entering an interactive nix-shell from a persistent session (Sessions part): the argv of
 * `nix-shell CONFIG` that runs `init` in its shell and stays open. Local only; kept apart from NixPort
 * so deploy and watch need not provide it.
 */
export interface NixShellPort {
  interactiveShell(configPath: string, init: string): Promise<string[]>
}

// ---- SessionPort ---------------------------------------------------------------------------------

export interface SessionInfo {
  id: SessionId
  createdAt: string
  attached: boolean
  windows: number
  /** The `owner` tags it was created with (null when it has none). */
  owner?: SessionOwner | null
}

/** Who made a session: which process (`instance`, see ProcessInstance) for which user. */
export interface SessionOwner {
  instance: string
  user: string
}

export interface SessionPort {
  /**
   * Creates the tmux session if missing; false when it existed already. `cwd` is its start directory,
   * `command` an argv run instead of the default shell (the session ends when it exits).
   */
  createSession(id: SessionId, opts?: { cwd?: string; command?: string[]; owner?: SessionOwner }): Promise<boolean>
  listSessions(): Promise<SessionInfo[]>
  killSession(id: SessionId): Promise<boolean>
  /** Sends COMMAND to the session (as typed input) without waiting. */
  runCommand(id: SessionId, command: string): Promise<boolean>
  /** Runs COMMAND in the session, streams its output, resolves with its exit code once it ends. */
  runAndWait(id: SessionId, command: string, onOutput?: (chunk: string) => void): Promise<{ exitCode: number }>
  /** The argv that attaches a terminal to the session. */
  attachCommand(id: SessionId): string[]
  /** The pane's current content (for attach without a terminal). */
  capture(id: SessionId): Promise<string>
}

// ---- RemoteExecutorPort --------------------------------------------------------------------------

/** An SSH destination: `user@host:port`, resolved from a target string, node name or @tag. */
export interface Target {
  /** How the operator named it (`root@10.0.0.1:22`, `web-1`); used in output and records. */
  name: string
  user: string
  host: string
  port: number
  /**
   * Set when Chimera filled in the user (root) or port (22) because the target did not say: then the
   * operator's ~/.ssh/config may name others, as it would for ssh. Absent: both were given.
   */
  defaulted?: { user: boolean; port: boolean }
}

export type RemoteFailure =
  | "unknown-host-key"
  | "host-key-mismatch"
  | "auth-failed"
  | "unreachable"
  | "timeout"
  | "error"

/** Why a target could not run a command: its kind and a sentence an operator can act on. */
export interface RemoteFailureInfo {
  kind: RemoteFailure
  message: string
  /** For a timeout: whether the target never completed the SSH handshake, or its command did not finish. */
  phase?: "connect" | "command"
}

export interface ExecResult {
  target: Target
  /** True when the command ran and exited 0. */
  ok: boolean
  exitCode: number | null
  stdout: string
  stderr: string
  /** Set when the command could not run at all (connection, host key, auth, timeout). */
  failure?: RemoteFailureInfo
  /** Wall time of the target's command, connection included, in whole milliseconds. */
  ms: number
}

export interface ExecOptions {
  timeoutMs?: number
  stdin?: string
  /** Open a new connection instead of reusing the pooled one (magic rollback confirms this way). */
  fresh?: boolean
  /**
   * The command is the operator's own: on the node it runs under coreutils' `timeout`, which kills it
   * and what it started when the budget runs out. SSH's "signal" request alone cannot be relied on:
   * OpenSSH refuses it for root logins. Chimera's own scripts do not set it (a deploy's activation
   * must not be cut off halfway by its caller's timer; it has its own on the node).
   */
  stopOnNode?: boolean
  /**
   * Bytes of each output stream kept, for a command whose honest output has a known bound (the
   * executor's own cap otherwise): a deploy's plan prints a subset of the paths it was given.
   */
  maxOutputBytes?: number
}

export interface SystemState {
  profile: StorePath | null
  current: StorePath | null
  booted: StorePath | null
}

export interface Generation {
  number: number
  date: string
  path: StorePath
  current: boolean
}

export interface RemoteExecutorPort {
  exec(target: Target, command: string, opts?: ExecOptions): Promise<ExecResult>
  /** `exec` on every target at once, at most `--parallel` at a time; one result per target, in order. */
  execMany(targets: Target[], command: string, opts?: ExecOptions): Promise<ExecResult[]>
  /** Copies the closure of `path` to the target (nix-copy-closure --to). */
  syncClosure(
    target: Target,
    path: StorePath,
    opts?: { useSubstitutes?: boolean; timeoutMs?: number },
  ): Promise<ExecResult>
  /** Where the target's system profile, /run/current-system and /run/booted-system point (throws RemoteError). */
  systemState(target: Target): Promise<SystemState>
  close(): Promise<void>
}

/** Thrown by the RemoteExecutorPort methods that return data (systemState) when the target failed. */
export class RemoteError extends Error {
  override readonly name = "RemoteError"
  constructor(readonly result: ExecResult) {
    super(result.failure?.message ?? `${result.target.name}: exited ${result.exitCode}: ${result.stderr.trim()}`)
  }
}
