// Names JavaScript in `perf` profiles of a Bun process. Run the process with BUN_JSC_useJITDump=true:
// JavaScriptCore then writes every piece of machine code it makes (functions at each tier, inline
// caches, thunks) to a jitdump file in /tmp, named jit-N-<pid>-<random> (not jit-<pid>.dump, so
// `perf inject --jit` does not find it). This reads that file and writes /tmp/perf-<pid>.map, which
// `perf report` and `perf script` read by themselves for the process's anonymous code.
//
//   BUN_JSC_useJITDump=true bun control/main.ts web &   # then: perf record -g -p PID -- sleep 10
//   bun scripts/perf-map.ts /tmp/jit-*-PID-*           # then: perf report --sort sym
//
// The runtime buffers the dump and does not flush it at exit, so the code made in a process's last
// moments may be missing: profile a process that is still running. A code address can be reused once
// its code is freed; the map keeps every entry in order, so a sample in reused memory may carry an
// older name. `--kinds` also prints how many pieces of each kind were made, and when (a steady stream
// of new inline caches is a cache rebuilt over and over).
import { parseArgs } from "node:util"

const USAGE = "usage: bun scripts/perf-map.ts [--kinds] /tmp/jit-N-PID-XXXXXX"
let parsed: { values: { kinds?: boolean; help?: boolean }; positionals: string[] }
try {
  parsed = parseArgs({
    args: Bun.argv.slice(2),
    options: { kinds: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  })
} catch (error) {
  console.error(`${(error as Error).message}\n${USAGE}`)
  process.exit(2)
}
const { values, positionals } = parsed
if (values.help) {
  console.log(USAGE)
  process.exit(0)
}
const file = positionals[0]
if (!file || positionals.length > 1) {
  console.error(USAGE)
  process.exit(2)
}

const bytes = new Uint8Array(await Bun.file(file).arrayBuffer())
const view = new DataView(bytes.buffer)
const MAGIC = 0x4a695444 // "JiTD", the jitdump format's (tools/perf/util/jitdump.h)
if (bytes.length < 40 || view.getUint32(0, true) !== MAGIC) {
  console.error(`${file}: not a jitdump file (run the process with BUN_JSC_useJITDump=true)`)
  process.exit(1)
}
const headerSize = view.getUint32(8, true)
const pid = view.getUint32(20, true)
const CODE_LOAD = 0
const decoder = new TextDecoder()
const lines: string[] = []
/** Pieces of code by kind (`JSC-FTL`, `JSC-InlineCache`, …) and by second of the monotonic clock. */
const kinds = new Map<string, Map<number, number>>()
for (let at = headerSize; at + 16 <= bytes.length; ) {
  const id = view.getUint32(at, true)
  const size = view.getUint32(at + 4, true)
  if (size === 0 || at + size > bytes.length) break // a record still being written
  if (id === CODE_LOAD) {
    const seconds = Math.floor(Number(view.getBigUint64(at + 8, true)) / 1e9)
    const address = view.getBigUint64(at + 32, true)
    const length = view.getBigUint64(at + 40, true)
    const nameAt = at + 56
    const name = decoder.decode(bytes.subarray(nameAt, bytes.indexOf(0, nameAt)))
    lines.push(`${address.toString(16)} ${length.toString(16)} ${name}`)
    const kind = name.split(":")[0] ?? name
    const bySecond = kinds.get(kind) ?? new Map<number, number>()
    bySecond.set(seconds, (bySecond.get(seconds) ?? 0) + 1)
    kinds.set(kind, bySecond)
  }
  at += size
}
const out = `/tmp/perf-${pid}.map`
await Bun.write(out, `${lines.join("\n")}\n`)
console.log(`${out}: ${lines.length} pieces of code of process ${pid}`)
if (values.kinds)
  for (const [kind, bySecond] of kinds) {
    const total = [...bySecond.values()].reduce((a, b) => a + b, 0)
    const seconds = [...bySecond.keys()]
    const span = Math.max(...seconds) - Math.min(...seconds) + 1
    console.log(`${kind}: ${total} over ${span} s (the busiest second: ${Math.max(...bySecond.values())})`)
  }
