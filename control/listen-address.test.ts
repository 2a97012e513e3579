// The CLI URL `chimera web` suggests for the address it listens on: a wildcard address is reached
// through loopback (the CLI sends a credential over plain http only there), others as they are.
import { expect, test } from "bun:test"
import { cliUrlFor, onOwnPort, portInUse } from "./listen-address.ts"

test("a wildcard listen address is suggested as loopback; a loopback one as it is", () => {
  expect(cliUrlFor("0.0.0.0", 8080)).toBe("http://127.0.0.1:8080")
  expect(cliUrlFor("::", 8080)).toBe("http://[::1]:8080")
  expect(cliUrlFor("[::]", 9000)).toBe("http://[::1]:9000")
  expect(cliUrlFor("127.0.0.11", 8080)).toBe("http://127.0.0.11:8080")
  expect(cliUrlFor("::1", 8080)).toBe("http://[::1]:8080")
  expect(portInUse("0.0.0.0", 8080)).toContain("CHIMERA_URL=http://127.0.0.1:N")
})

test("an address this machine does not have, or a port only root may take, is refused saying what to do", () => {
  const listen = (host: string, port: number) => () =>
    onOwnPort(host, port, () => Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true))
  expect(listen("999.1.1.1", 18_998)).toThrow('"999.1.1.1" is not an address of this machine')
  expect(listen("10.255.255.1", 18_998)).toThrow("use one it has, such as 127.0.0.1")
})
