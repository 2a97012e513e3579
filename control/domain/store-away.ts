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
