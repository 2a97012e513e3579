// What a deploy says on stderr of the nodes whose desired closure it set.
import { expect, spyOn, test } from "bun:test"
import { reportPublished } from "./publish-desired.ts"

test("the nodes are named in order, not in the order their targets were confirmed", () => {
  const written: string[] = []
  const stderr = spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk))
    return true
  })
  try {
    reportPublished({ published: ["web-2", "db-1", "web-1"], problems: [], publish: async () => {} }, false)
  } finally {
    stderr.mockRestore()
  }
  expect(written.join("")).toContain("desired closure set on the control plane for db-1, web-1, web-2\n")
})
