// What a deploy says on stderr of the nodes whose desired closure it set, read from a real process.
import { expect, test } from "bun:test"
import { join } from "node:path"

test("the nodes are named in order, not in the order their targets were confirmed", async () => {
  const module = join(import.meta.dir, "publish-desired.ts")
  const script = `
    const { reportPublished } = await import(${JSON.stringify(module)})
    reportPublished({ published: ["web-2", "db-1", "web-1"], problems: [], publish: async () => {} }, false)
  `
  const proc = Bun.spawn([process.execPath, "-e", script], { env: { ...process.env, NO_COLOR: "1" }, stderr: "pipe" })
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
  expect({ code, stderr }).toEqual({
    code: 0,
    stderr: "desired closure set on the control plane for db-1, web-1, web-2\n",
  })
})
