// Remote execution over SSH: RemoteExecutorPort on ssh2 with a connection pool, known_hosts
// verification and per-target failures as values; target strings and the fleet inventory they resolve
// through; each target's route (HostName, User, Port, keys, ProxyJump) as OpenSSH's configuration gives
// it, shared by the ssh2 connections and the closure copy. The CLI's shared SSH flags (control/cli/ssh-flags.ts) turn into SshExecutorOptions.
export { createSshExecutor, type SshExecutor } from "./executor.ts"
export { emptyInventory, type Inventory, type InventoryNode, inventoryFromConfig } from "./inventory.ts"
export { fingerprint, knownHostsName, openKnownHosts } from "./known-hosts.ts"
export { DEFAULT_PARALLEL, DEFAULT_TIMEOUT_MS, type SshExecutorOptions } from "./options.ts"
export { parseSystemState, SYSTEM_STATE_COMMAND } from "./system-state.ts"
export { parseTarget, resolveTargets, TargetError, targetKey } from "./target.ts"
