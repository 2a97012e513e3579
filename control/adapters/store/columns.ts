// A column's value as Bun.SQL hands it back, read the same way by every SQL store: SQLite and
// PostgreSQL differ in what type a number or a missing value comes back as.

/** Text, or null for SQL NULL. */
export const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))

/** A number (PostgreSQL's bigint comes back as text), 0 for SQL NULL. */
export const num = (v: unknown): number => Number(v ?? 0)
