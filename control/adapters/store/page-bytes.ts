// A page bounded by the bytes it holds as well as by a count: its rows' sizes are read first
// (octet_length reads no row), and only the rows that fit are read whole. The event log and the
// deployment list page this way, since one row of either may be a MiB.
import { num } from "./columns.ts"

/** How many of `rows` (each with its stored `size`), from the first, fit in `maxBytes`: one at least. */
export function fittingRows(rows: readonly { size: unknown }[], maxBytes: number): number {
  let count = 0
  for (let bytes = 0; count < rows.length; count++) {
    bytes += num(rows[count]?.size)
    if (count > 0 && bytes > maxBytes) break
  }
  return count
}
