// Whether an error means the database is away rather than that a query was wrong: a PostgreSQL server
// that cannot be reached, refused the connection, dropped it, or is starting up or shutting down
// (SQLSTATE classes 08 and 57P). The API answers such a request 503 STORE_UNAVAILABLE, and a write
// that must not be lost (a deploy's record) is tried again until the database answers.

export function storeAway(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== "PostgresError") return false
  const { code, errno } = error as { code?: string; errno?: string }
  return code?.startsWith("ERR_POSTGRES_CONNECTION_") === true || /^(08|57P)/.test(errno ?? "")
}
