// What a deploy through the API may run on its targets besides the closure: its health checks. A
// command check runs as root on every target, so it meets the risk rule every other way of running a
// command meets (an operator's high-risk check is refused, as POST /api/run-command would refuse it);
// a URL check is fetched from the control-plane host, so it may dial only the target (`{host}`).
// Both are judged before the deploy starts: this control plane knows no node, so a request that passes
// them is answered by that (422) instead.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { addUser, call, login } from "./support/auth.ts"
import { startInProcess, type TestControlPlane } from "./support/control-plane.ts"

const CLOSURE = "/nix/store/i4lsmrfgm60zrm17z4xi2j8b0fg1xjk9-web-test-system-1"
let cp: TestControlPlane
let operator: string

beforeAll(async () => {
  cp = await startInProcess()
  await addUser(cp, "ops", "operator")
  operator = await login(cp, "ops")
})
afterAll(() => cp.stop())

const deploy = (token: string, extra: Record<string, unknown>) =>
  call(cp, token, "POST", "/api/deployments", { targets: ["node-1"], closure: CLOSURE, ...extra })

describe("a deploy's health checks through the API", () => {
  test("an operator's high-risk health command is refused as a high-risk command would be", async () => {
    const res = await deploy(operator, { health_cmd: ["test -L /run/current-system", "id > /run/pwned"] })
    expect(res.status).toBe(403)
    const body = (await res.json()) as { code: string; error: string }
    expect(body.code).toBe("PERMISSION_DENIED")
    expect(body.error).toContain("this command is high risk")
    expect(body.error).toContain("commands:run-high")
  })

  test("a health URL that dials anything but the target is refused, for an admin too", async () => {
    for (const token of [operator, cp.adminToken]) {
      const res = await deploy(token, { health_url: ["http://127.0.0.1:9/internal-only.txt"] })
      expect(res.status).toBe(422)
      expect(((await res.json()) as { error: string }).error).toContain("its host must be {host}")
    }
    for (const sneaky of [
      "http://169.254.169.254/?host={host}",
      "http://{HOST}:80/",
      "http://%7Bhost%7D/",
      // The target as a user name (or a password), the host after `@`.
      "http://{host}:x@127.0.0.5:47251/probe",
      "http://{host}@127.0.0.5/",
      "http://{host}:80@127.0.0.5/",
      "https://{host}:8443:x@127.0.0.5/",
    ]) {
      // The gate's own 422, not the one for the unknown target that would come after it.
      const res = await deploy(operator, { health_url: [sneaky] })
      const body = (await res.json()) as { error: string }
      expect({ sneaky, status: res.status, host: body.error.includes("its host must be {host}") }).toEqual({
        sneaky,
        status: 422,
        host: true,
      })
    }
  })

  test("low-risk commands and {host} URLs pass the gate, and the deploy goes on to what comes next", async () => {
    const res = await deploy(operator, {
      health_cmd: ["test -L /run/current-system"],
      health_url: ["http://{host}:8080/health"],
      dry_run: true,
    })
    const body = (await res.json()) as { error: string }
    expect({ status: res.status, error: body.error }).toMatchObject({ status: 422 })
    expect(body.error).toContain('unknown target "node-1"')
  })
})
