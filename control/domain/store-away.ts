// Whether a store's error means the database could not be reached at all: PostgreSQL down, refusing
// connections, dropping them, or starting up or shutting down. Such a failure says nothing about the
// request (the API answers 503 STORE_UNAVAILABLE) and refused every heartbeat while it lasted (the
// reachability sweep counts silence again from it); any other error (a deadlock, a timeout, a bug)
// is neither. Bun.SQL's errors are recognised by their shape, so neither the domain nor the API
// imports the adapter.

/**
 * Bun.SQL's connection failures (`ERR_POSTGRES_CONNECTION_*`), SQLSTATE classes 08 (connection) and
 * 57P (shutting down, starting up), 53300 (no connection slot left) and class 28 (the server refused
 * this replica's credentials, a password rotated under it): each leaves it without a database.
 */
export function storeAway(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== "PostgresError") return false
  const { code, errno } = error as { code?: unknown; errno?: unknown }
  return (
    (typeof code === "string" && code.startsWith("ERR_POSTGRES_CONNECTION_")) ||
    (typeof errno === "string" && /^(08|57P|53300|28)/.test(errno))
  )
}

/**
 * Why the store failed, in words a caller may read: PostgreSQL's own message can name the replica's
 * address, its role and its database (`password authentication failed for user "chimera"`), and the
 * 503s and the public `/api/health` reach callers without a credential, so a PostgreSQL error is told
 * by its kind and code only (the log keeps the whole message). SQLite's messages are about the file.
 */
export function storeReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  if (error.name !== "PostgresError") return error.message
  const { code, errno } = error as { code?: unknown; errno?: unknown }
  const state = typeof errno === "string" && /^[0-9A-Z]{5}$/.test(errno) ? errno : null
  const kind =
    typeof code === "string" && code.startsWith("ERR_POSTGRES_CONNECTION_")
      ? "PostgreSQL does not answer or closed the connection"
      : state?.startsWith("28")
        ? "PostgreSQL refused this replica's credentials"
        : state === "53300"
          ? "PostgreSQL has no connection slot left"
          : state?.startsWith("57P")
            ? "PostgreSQL ended the connection or is starting up (a restart, a shutdown, an administrator)"
            : "PostgreSQL answered with an error"
  const codes = state ? `SQLSTATE ${state}` : typeof code === "string" ? code : null
  return codes ? `${kind} (${codes}; the control plane's log has its message)` : kind
}
