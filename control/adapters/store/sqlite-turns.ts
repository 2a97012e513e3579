// Bun.SQL's SQLite adapter has one connection. A transaction keeps it across every `await` of its
// callback, and Bun.SQL queues another transaction behind it, but not a plain statement: one that
// another request issues on the handle meanwhile runs on that connection, so inside the open
// transaction, and is lost with it when the transaction rolls back, after its own request was told it
// was done. So on SQLite the store's handle is this wrapper: a statement outside any transaction waits
// while one is open or queued, and transactions and such statements take turns in the order they are
// issued. With no transaction about, a statement runs at once, as before.
// A statement issued on the handle (not through `tx`) from inside a transaction's callback joins that
// transaction at once, as before, rather than wait for the end of the transaction that waits for it.
// So a transaction's callback must never await work begun outside it that uses the handle (a batch
// another request started, a shared in-flight lookup): that work waits for the transaction, which
// waits for it, and neither ends. None does today; each callback awaits only its own `tx` statements.
// PostgreSQL needs none of this: its pool gives each transaction a connection of its own.
import { AsyncLocalStorage } from "node:async_hooks"
import type { SQL } from "bun"

type Then = (onFulfilled?: (value: unknown) => unknown, onRejected?: (reason: unknown) => unknown) => Promise<unknown>

const _noop = () => {}

export function takeTurns(db: SQL): SQL {
  /** The transaction whose callback the current code runs in, while it is open. */
  const inside = new AsyncLocalStorage<{ open: boolean }>()
  /** Transactions and statements queued for their turn or running in it. */
  let waiting = 0
  let last: Promise<unknown> = Promise.resolve()

  const inTurn = <T>(work: () => PromiseLike<T>): Promise<T> => {
    waiting++
    const done = last.then(work).finally(() => {
      waiting--
    })
    last = done.then(_noop, _noop)
    return done
  }
  const mayRunNow = () => waiting === 0 || inside.getStore()?.open === true

  // A query runs when it is first awaited (`then`, `catch`, `finally`), not when it is written: a
  // fragment (db`AND …`) is never run, and whether a transaction is open is known only then.
  let gated: object | null = null
  const gate = <Q>(query: Q): Q => {
    if (!(query instanceof Promise)) return query // a helper, such as db(ids)
    if (!gated) {
      const run = Object.getPrototypeOf(query).then as Then
      const start = Object.getPrototypeOf(query).execute as (this: Promise<unknown>) => Promise<unknown>
      gated = Object.create(Object.getPrototypeOf(query), {
        // Starts the query without awaiting it: it waits its turn all the same.
        execute: {
          value(this: Promise<unknown>) {
            if (mayRunNow()) return start.call(this)
            void inTurn(() => {
              start.call(this)
              return run.call(this)
            }).catch(_noop)
            return this
          },
        },
        // biome-ignore lint/suspicious/noThenProperty: a query is a promise; awaiting it is what runs it
        then: {
          value(
            this: Promise<unknown>,
            onFulfilled?: (value: unknown) => unknown,
            onRejected?: (r: unknown) => unknown,
          ) {
            if (mayRunNow()) return run.call(this, onFulfilled, onRejected)
            return inTurn(() => run.call(this)).then(onFulfilled, onRejected)
          },
        },
        catch: {
          value(this: Promise<unknown>, onRejected?: (r: unknown) => unknown) {
            return this.then(undefined, onRejected)
          },
        },
        finally: {
          value(this: Promise<unknown>, onFinally?: () => void) {
            return Promise.prototype.finally.call(this, onFinally)
          },
        },
      })
    }
    Object.setPrototypeOf(query, gated)
    return query
  }

  const begin = (...args: unknown[]): Promise<unknown> => {
    const open = () => Reflect.apply(db.begin, db, args) as Promise<unknown>
    if (inside.getStore()?.open) return open()
    const turn = { open: true }
    return inTurn(() =>
      inside.run(turn, open).finally(() => {
        turn.open = false
      }),
    )
  }
  const unsafe = (...args: Parameters<SQL["unsafe"]>) => gate(db.unsafe(...args))
  const file = (...args: Parameters<SQL["file"]>) => gate(db.file(...args))

  return new Proxy(db, {
    apply: (target, self, args) => gate(Reflect.apply(target, self, args)),
    get(target, key) {
      if (key === "begin" || key === "transaction") return begin
      if (key === "unsafe") return unsafe
      if (key === "file") return file
      return Reflect.get(target, key)
    },
  })
}
