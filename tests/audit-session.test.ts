// A scripted session (users added, logins good and bad, a deploy by setting a
// desired closure, a node enrolled, commands run on a real node over SSH with a real sudo password,
// right and wrong, a sudo password sent where it does not belong, refused and failing calls) leaves
// exactly one audit entry per mutating request, under that request's id, and no secret in any log
// line, audit entry or API answer. The audit table refuses updates and deletes.
import { Database } from "bun:sqlite"
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test"
import { join } from "node:path"
import { commandTargets } from "../control/adapters/ssh/command-targets.ts"
import { setLogLevel, setLogSink } from "../protocol/log.ts"
import { heartbeatBody } from "./support/auth.ts"
import { startInProcess } from "./support/control-plane.ts"
import { addSudoUser } from "./support/sudo-user.ts"
import { createTestbed } from "./support/testbed.ts"

setDefaultTimeout(60_000)

const GEN1 = "/nix/store/yqjaw21d05si79hnrp0rfzyhb7403rdm-chimera-test-system-1"
const OPS_PASSWORD = "ops-Pa55word-never-logged"
const NEW_PASSWORD = "ops-N3w-password-never-logged"
const SUDO_PASSWORD = "sudo-S3cret-never-logged"

afterEach(() => {
  setLogSink((line) => process.stderr.write(`${line}\n`))
  setLogLevel("WARNING")
})

describe("audit", () => {
  test("one entry per mutating request, and no secret in any log line, audit entry or answer", async () => {
    const logs: string[] = []
    setLogSink((line) => logs.push(line))
    setLogLevel("DEBUG")
    await using tb = await createTestbed({ nodes: 1, prefix: "aud" })
    await addSudoUser(tb.nodes[0]!.node, join(tb.dir, "sudo"), {
      name: "deploy",
      uid: 1500,
      password: SUDO_PASSWORD,
      authorizedKeys: await Bun.file(tb.authorizedKeysFile).text(),
    })
    await using cp = await startInProcess({
      commandTargets: commandTargets(
        // The node's configured login is the sudoer, as an operator's would be on a real fleet.
        { nodes: [{ name: "aud-1", address: `deploy@${tb.nodes[0]!.address}:22`, tags: [] }], targets: [] },
        { identity: tb.identityFile, knownHosts: tb.knownHostsFile },
      ),
    })

    const answers: { text: string; issuesSecret: boolean }[] = []
    const mutating: string[] = []
    const send = async (token: string | null, method: string, path: string, body?: unknown, issuesSecret = false) => {
      const headers: Record<string, string> = { "content-type": "application/json" }
      if (token) headers.authorization = `Bearer ${token}`
      const res = await fetch(`${cp.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const text = await res.text()
      answers.push({ text, issuesSecret })
      const requestId = res.headers.get("x-request-id") ?? ""
      if (method !== "GET" && !path.endsWith("/heartbeat")) mutating.push(requestId)
      return { status: res.status, json: () => JSON.parse(text) as Record<string, string> }
    }
    const admin = cp.adminToken

    expect(
      (await send(admin, "POST", "/api/users", { username: "ops", password: OPS_PASSWORD, role: "operator" })).status,
    ).toBe(201)
    expect(
      (await send(admin, "POST", "/api/users", { username: "ops", password: OPS_PASSWORD, role: "viewer" })).status,
    ).toBe(409)
    expect(
      (await send(null, "POST", "/api/auth/login", { username: "ops", password: "wrong-password-x" })).status,
    ).toBe(401)
    const login = await send(null, "POST", "/api/auth/login", { username: "ops", password: OPS_PASSWORD }, true)
    expect(login.status).toBe(200)
    const ops = login.json().token ?? ""
    expect((await send(ops, "POST", "/api/nodes/join-tokens", {})).status).toBe(403)
    const issued = await send(admin, "POST", "/api/nodes/join-tokens", { nodeId: "n1" }, true)
    const joinToken = issued.json().token ?? ""
    const enrolled = await send(joinToken, "POST", "/api/agent/enroll", { nodeId: "n1", agentVersion: "t" }, true)
    const credential = enrolled.json().credential ?? ""
    expect((await send(credential, "POST", "/api/agent/n1/heartbeat", heartbeatBody("n1"))).status).toBe(200)
    expect((await send(ops, "PUT", "/api/nodes/n1/desired", { closure: GEN1 })).status).toBe(200)
    // A sudo password sent where no route takes one: refused, and kept out of the answer and the audit.
    const sudo = await send(ops, "PUT", "/api/nodes/n1/desired", { closure: GEN1, sudoPassword: SUDO_PASSWORD })
    expect(sudo.status).toBe(422)
    expect((await send(ops, "PUT", "/api/nodes/ghost/desired", { closure: GEN1 })).status).toBe(404)
    // Commands on a real node as a non-root login: sudo with the password, once right and once wrong,
    // in a session, plus one the registry refuses an operator.
    const session = await send(ops, "POST", "/api/create-session", { node: "aud-1" })
    expect(session.status).toBe(201)
    const sessionId = session.json().session_id ?? ""
    const sudoRun = (command: string, password: string, token = ops) =>
      send(token, "POST", "/api/run-command", {
        command,
        session_id: sessionId,
        sudo_password: password,
      })
    const ran = await sudoRun("sudo id -u", SUDO_PASSWORD)
    expect(ran.json()).toMatchObject({ success: true, stdout: "0\n" })
    // A `$` expansion is high risk (the registry reads none), so the admin, who may use any session,
    // shows that an echo of the password in the output comes back redacted.
    const echoed = await sudoRun("sudo id -u; echo $__chimera_pw", SUDO_PASSWORD, admin)
    expect(echoed.json()).toMatchObject({ success: true, stdout: "0\n[REDACTED]\n" })
    expect((await sudoRun("sudo -k true", `${SUDO_PASSWORD}-wrong`)).json()).toMatchObject({ success: false })
    expect((await send(ops, "POST", "/api/run-command", { command: "reboot", node: "aud-1" })).status).toBe(403)
    expect((await send(ops, "PUT", "/api/users/ops/password", { password: NEW_PASSWORD })).status).toBe(403)
    const refreshed = (await send(ops, "POST", "/api/auth/refresh", undefined, true)).json().token ?? ""
    const apiToken = (await send(admin, "POST", "/api/tokens", { name: "ci", role: "viewer" }, true)).json().token ?? ""
    expect(
      (
        await send(refreshed, "POST", "/api/auth/password", {
          currentPassword: OPS_PASSWORD,
          newPassword: NEW_PASSWORD,
        })
      ).status,
    ).toBe(200)
    expect((await send("chm_api_notarealtokennotarealtokennotarealtoken1", "DELETE", "/api/tokens/x")).status).toBe(401)
    expect((await send(admin, "GET", "/api/nodes")).status).toBe(200)

    const audit = await send(admin, "GET", "/api/audit?limit=1000")
    const entries = (
      audit.json() as unknown as {
        entries: {
          requestId: string
          actor: string
          role: string | null
          action: string
          result: string
          source: string
        }[]
      }
    ).entries
    // Exactly one entry per mutating request, under the id its answer carried.
    expect(entries.map((e) => e.requestId).sort()).toEqual([...mutating].sort())
    expect(new Set(entries.map((e) => e.requestId)).size).toBe(entries.length)
    const by = (action: string) => entries.filter((e) => e.action === action)
    expect(by("PUT /api/nodes/:id/desired").map((e) => [e.actor, e.role, e.result])).toEqual([
      ["ops", "operator", "ok"],
      ["ops", "operator", "failed"],
      ["ops", "operator", "failed"],
    ])
    // One row per command, with what it came to: the failed sudo is a failure, the refused reboot a denial.
    expect(by("POST /api/run-command")).toHaveLength(4)
    expect(
      by("POST /api/run-command")
        .filter((e) => e.actor === "ops")
        .map((e) => [e.actor, e.result, (e as unknown as { nodeId: string }).nodeId]),
    ).toEqual([
      ["ops", "ok", "aud-1"],
      ["ops", "failed", "aud-1"],
      ["ops", "denied", "aud-1"],
    ])
    expect(by("POST /api/auth/login").map((e) => [e.actor, e.result])).toEqual([
      ["login:ops", "denied"],
      ["login:ops", "ok"],
    ])
    expect(entries.every((e) => e.source === "127.0.0.1")).toBe(true)
    expect(entries.find((e) => e.action === "POST /api/agent/enroll")).toMatchObject({ nodeId: "n1" } as never)

    const secrets = {
      OPS_PASSWORD,
      NEW_PASSWORD,
      SUDO_PASSWORD,
      admin,
      ops,
      refreshed,
      joinToken,
      credential,
      apiToken,
    }
    const auditText = JSON.stringify(entries)
    const logText = logs.join("\n")
    expect(logs.length).toBeGreaterThan(0)
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length).toBeGreaterThan(8)
      expect(`${name} in logs: ${logText.includes(secret)}`).toBe(`${name} in logs: false`)
      expect(`${name} in audit: ${auditText.includes(secret)}`).toBe(`${name} in audit: false`)
    }
    for (const secret of [OPS_PASSWORD, NEW_PASSWORD, SUDO_PASSWORD])
      expect(answers.some((a) => a.text.includes(secret))).toBe(false)
    // Tokens appear only in the one answer that hands each out.
    for (const token of [ops, refreshed, joinToken, credential, apiToken])
      expect(answers.filter((a) => a.text.includes(token)).every((a) => a.issuesSecret)).toBe(true)
    expect(answers.some((a) => !a.issuesSecret && a.text.includes(admin))).toBe(false)

    // Append-only, enforced by the database itself.
    const db = new Database(join(cp.dataDir, "chimera.db"))
    try {
      expect(() => db.run("UPDATE audit_log SET actor = 'someone-else'")).toThrow("append-only")
      expect(() => db.run("DELETE FROM audit_log")).toThrow("append-only")
    } finally {
      db.close()
    }
  })
})
