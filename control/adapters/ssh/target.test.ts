import { describe, expect, test } from "bun:test"
import type { Inventory } from "./inventory.ts"
import { inventoryFromConfig } from "./inventory.ts"
import { parseTarget, resolveTargets, TargetError, targetKey } from "./target.ts"

const inventory: Inventory = {
  nodes: [
    { name: "web-1", address: "root@10.0.0.1", tags: ["web", "eu"] },
    { name: "web-2", address: "deploy@10.0.0.2:2222", tags: ["web"] },
    { name: "db-1", address: "[fd00::5]:22", tags: ["db"] },
  ],
  targets: ["10.0.9.9"],
}

const error = (fn: () => unknown): string => {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(TargetError)
    return (e as Error).message
  }
  throw new Error("expected a TargetError")
}

describe("parseTarget", () => {
  test("user and port default to root and 22, marked as defaults that ~/.ssh/config may override", () => {
    expect(parseTarget("10.0.0.1")).toEqual({
      name: "10.0.0.1",
      user: "root",
      host: "10.0.0.1",
      port: 22,
      defaulted: { user: true, port: true },
    })
    expect(parseTarget("Web.Example.org")).toMatchObject({ user: "root", host: "web.example.org", port: 22 })
    expect(parseTarget("admin@web")).toMatchObject({ defaulted: { user: false, port: true } })
    expect(parseTarget("web:2222")).toMatchObject({ defaulted: { user: true, port: false } })
    expect(parseTarget("[::1]:2222")).toMatchObject({ defaulted: { user: true, port: false } })
    expect(parseTarget("root@web:22").defaulted).toBeUndefined()
  })

  test("user@host:port is read in full", () => {
    expect(parseTarget("deploy@10.0.0.1:2222")).toEqual({
      name: "deploy@10.0.0.1:2222",
      user: "deploy",
      host: "10.0.0.1",
      port: 2222,
    })
  })

  test("IPv6 goes in brackets when a port follows, and may stand bare without one", () => {
    expect(parseTarget("root@[::1]:2222")).toMatchObject({ host: "::1", port: 2222 })
    expect(parseTarget("[fe80::1]")).toMatchObject({ host: "fe80::1", port: 22 })
    expect(parseTarget("root@::1")).toMatchObject({ host: "::1", port: 22 })
    expect(targetKey(parseTarget("[::1]:2222"))).toBe("root@[::1]:2222")
  })

  test("malformed targets are refused with the entry and the reason", () => {
    expect(error(() => parseTarget("root@host:0"))).toContain(
      'target "root@host:0": port must be a number from 1 to 65535',
    )
    expect(error(() => parseTarget("root@host:ssh"))).toContain('got "ssh"')
    expect(error(() => parseTarget("root@host:70000"))).toContain("1 to 65535")
    expect(error(() => parseTarget("bad user@host"))).toContain('"bad user" is not a valid user name')
    expect(error(() => parseTarget("root@[::1"))).toContain('without a closing "]"')
    expect(error(() => parseTarget("root@[::1]2222"))).toContain('expected ":port" after "]"')
    expect(error(() => parseTarget("root@exa mple"))).toContain("is not a host name")
    expect(error(() => parseTarget("root@-bad-.org"))).toContain("is not a host name")
    expect(error(() => parseTarget("root@"))).toContain("is not a host name")
    expect(error(() => parseTarget(" "))).toContain("empty")
  })
})

describe("resolveTargets", () => {
  test("a comma-separated list keeps its order and drops empty entries", () => {
    const ts = resolveTargets("10.0.0.7, root@10.0.0.8:2200,,", inventory)
    expect(ts.map(targetKey)).toEqual(["root@10.0.0.7:22", "root@10.0.0.8:2200"])
  })

  test("node names resolve through the inventory and keep their names", () => {
    const [t] = resolveTargets("web-2", inventory)
    expect(t).toEqual({ name: "web-2", user: "deploy", host: "10.0.0.2", port: 2222 })
  })

  test("@tag names every node with the tag; @all adds fleet.targets", () => {
    expect(resolveTargets("@web", inventory).map((t) => t.name)).toEqual(["web-1", "web-2"])
    expect(resolveTargets("@all", inventory).map((t) => t.name)).toEqual(["web-1", "web-2", "db-1", "10.0.9.9"])
  })

  test("@all with no node and no fleet.targets is an error, not a run on nothing that succeeds", () => {
    expect(error(() => resolveTargets("@all", { nodes: [], targets: [] }))).toContain(
      'target "@all": the inventory has no nodes',
    )
  })

  test("the same destination named twice is contacted once, under its first name", () => {
    const ts = resolveTargets(["web-1,@eu", "root@10.0.0.1:22", "10.0.0.1"], inventory)
    expect(ts).toHaveLength(1)
    expect(ts[0]?.name).toBe("web-1")
  })

  test("an unknown tag lists the tags there are", () => {
    expect(error(() => resolveTargets("@cache", inventory))).toBe(
      'target "@cache": no node in the inventory has tag "cache" (tags: db, eu, web)',
    )
  })

  test("an empty list is an error that shows the syntax", () => {
    expect(error(() => resolveTargets(" , ", inventory))).toContain("--targets root@10.0.0.1,web-2,@db")
  })

  test("a bad entry fails the whole list before anything connects", () => {
    expect(error(() => resolveTargets("web-1,root@host:99999", inventory))).toContain("root@host:99999")
  })
})

describe("inventoryFromConfig", () => {
  test("reads fleet.nodes and fleet.targets", () => {
    const inv = inventoryFromConfig({
      fleet: {
        targets: ["root@10.0.0.1:22"],
        session_name: "chimera-deploy",
        nodes: { "web-1": { address: "10.0.0.2", tags: ["web"] } },
      },
    })
    expect(inv).toEqual({
      nodes: [{ name: "web-1", address: "10.0.0.2", tags: ["web"] }],
      targets: ["root@10.0.0.1:22"],
    })
  })

  test("a bad node address names the node", () => {
    const fleet = { targets: [], session_name: "s", nodes: { "web-1": { address: "root@h:0", tags: [] } } }
    expect(error(() => inventoryFromConfig({ fleet }))).toContain("config: fleet.nodes.web-1.address:")
  })
})
