// Which URLs the CLI sends a credential to: https anywhere, plain http only to this machine unless
// CHIMERA_ALLOW_HTTP=1 says otherwise. Pure checks; tests/cli-transport.test.ts runs the real CLI.
import { describe, expect, test } from "bun:test"
import { isLoopbackHost } from "../../protocol/loopback.ts"
import { checkTransport } from "./transport.ts"

describe("CLI transport", () => {
  test("loopback is 127.0.0.0/8, ::1 and localhost; anything else is not", () => {
    for (const host of ["127.0.0.1", "127.0.0.11", "127.255.255.254", "[::1]", "::1", "localhost", "LOCALHOST"])
      expect({ host, loopback: isLoopbackHost(host) }).toEqual({ host, loopback: true })
    for (const host of [
      "10.255.255.1",
      "128.0.0.1",
      "127.0.0.1.example.com",
      "localhost.example.com",
      "[::ffff:7f00:1]",
    ])
      expect({ host, loopback: isLoopbackHost(host) }).toEqual({ host, loopback: false })
  })

  test("http to another host is refused unless allowed; https and loopback http pass", () => {
    expect(() => checkTransport("http://10.255.255.1:1", {})).toThrow("refusing to send credentials")
    expect(() => checkTransport("http://10.255.255.1:1", { CHIMERA_ALLOW_HTTP: "0" })).toThrow("over plain HTTP")
    expect(() => checkTransport("http://10.255.255.1:1", { CHIMERA_ALLOW_HTTP: "yes" })).toThrow(
      "CHIMERA_ALLOW_HTTP: expected 1",
    )
    expect(() => checkTransport("http://10.255.255.1:1", { CHIMERA_ALLOW_HTTP: "1" })).not.toThrow()
    expect(() => checkTransport("https://10.255.255.1:1", {})).not.toThrow()
    expect(() => checkTransport("http://127.0.0.1:8080", {})).not.toThrow()
    expect(() => checkTransport("http://localhost:8080", {})).not.toThrow()
    expect(() => checkTransport("ftp://127.0.0.1", {})).toThrow("expected an http:// or https:// URL")
    expect(() => checkTransport("chimera.example.com", {})).toThrow("is not a URL")
  })

  test("a user or password in the URL is refused, and the password is not repeated", () => {
    let message = ""
    try {
      checkTransport("https://ops:hunter2@chimera.example.com", {})
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toContain("carries a user or password")
    expect(message).toContain("https://[redacted]@chimera.example.com")
    expect(message).not.toContain("hunter2")
  })
})
