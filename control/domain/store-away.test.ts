// Which store errors mean "no database" (a 503, and silence counted again) and which are the query's.
// Bun.SQL's PostgresError carries the server's SQLSTATE as `errno` and its own failures as `code`.
import { expect, test } from "bun:test"
import { storeAway } from "./store-away.ts"

const postgres = (fields: { code?: string; errno?: string }) =>
  Object.assign(new Error("from the server"), { name: "PostgresError" }, fields)

test("connection failures, shutdowns, no free slot and refused credentials are the database away; the rest are not", () => {
  const away = [
    { code: "ERR_POSTGRES_CONNECTION_CLOSED" },
    { errno: "08006" }, // connection failure
    { errno: "57P01" }, // admin shutdown (a restart)
    { errno: "57P03" }, // cannot connect now (starting up)
    { errno: "53300" }, // too many connections
    { errno: "28P01" }, // password authentication failed (rotated under the replica)
  ]
  const query = [{ errno: "40P01" }, { errno: "57014" }, { errno: "23505" }, { errno: "53100" }, {}]
  expect(away.map((f) => storeAway(postgres(f)))).toEqual(away.map(() => true))
  expect(query.map((f) => storeAway(postgres(f)))).toEqual(query.map(() => false))
  expect(storeAway(new Error("Failed to connect"))).toBe(false) // not the driver's error
})
