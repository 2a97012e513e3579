// What the signed-in role may do to a node, and only that: buttons a role lacks the permission for
// are not shown (the API refuses them anyway). Every action goes through a confirmation that names
// the node and what will be sent. Today's API offers: set the desired closure and heal now
// (`fleet:deploy`; healing re-sends the desired closure, which the agent activates even with auto-heal
// off), and run a shell command through the agent (`commands:run`). Rollback (POST /api/rollbacks)
// goes over SSH to nodes named in [fleet.nodes] and is not offered here yet.
import { useState } from "preact/hooks"
import { seg } from "../client/api.ts"
import type { NodeView, RelayResult } from "../client/types.ts"
import type { Ctx } from "./app.tsx"
import { Confirm } from "./confirm.tsx"

type Pending =
  | { kind: "desired"; closure: string }
  | { kind: "heal"; closure: string }
  | { kind: "run"; command: string }
  | null

const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$/

export function NodeActions({ ctx, node, onCommandRun }: { ctx: Ctx; node: NodeView; onCommandRun(): void }) {
  const { session, api } = ctx
  const canDeploy = session.can("fleet:deploy")
  const canRun = session.can("commands:run")
  const [closure, setClosure] = useState("")
  const [command, setCommand] = useState("")
  const [pending, setPending] = useState<Pending>(null)
  const [busy, setBusy] = useState(false)
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null)
  const [result, setResult] = useState<RelayResult["results"][number] | null>(null)

  if (!canDeploy && !canRun) return null

  const act = async () => {
    if (!pending) return
    setBusy(true)
    setMessage(null)
    try {
      if (pending.kind === "run") {
        const r = await api.post<RelayResult>("/api/fleet/run", {
          nodes: [node.id],
          command: pending.command,
          timeout: 30,
        })
        const mine = r.results[0] ?? null
        setResult(mine)
        setMessage({ ok: mine?.success ?? false, text: `command ${mine?.status ?? "sent"}` })
        onCommandRun()
      } else {
        await api.put(`/api/nodes/${seg(node.id)}/desired`, { closure: pending.closure })
        setMessage({
          ok: true,
          text:
            pending.kind === "heal" ? "heal requested: the agent activates the desired closure" : "desired closure set",
        })
        if (pending.kind === "desired") setClosure("")
      }
    } catch (error) {
      setMessage({ ok: false, text: error instanceof Error ? error.message : String(error) })
    } finally {
      setBusy(false)
      setPending(null)
    }
  }

  const closureOk = STORE_PATH.test(closure.trim())
  return (
    <section aria-labelledby="actions-title" class="actions" data-testid="node-actions">
      <h2 id="actions-title">Actions</h2>
      <div class="action-row">
        {canDeploy && (
          <>
            <button
              type="button"
              disabled={!node.desiredPath}
              title={node.desiredPath ? undefined : "no desired closure is set"}
              onClick={() => node.desiredPath && setPending({ kind: "heal", closure: node.desiredPath })}
            >
              Heal now
            </button>
            <form
              class="inline"
              onSubmit={(e) => {
                e.preventDefault()
                if (closureOk) setPending({ kind: "desired", closure: closure.trim() })
              }}
            >
              <label for="closure">Desired closure</label>
              <input
                id="closure"
                class="mono"
                placeholder="/nix/store/…-nixos-system-…"
                value={closure}
                onInput={(e) => setClosure(e.currentTarget.value)}
                aria-invalid={closure !== "" && !closureOk}
              />
              <button type="submit" disabled={!closureOk}>
                Set desired
              </button>
            </form>
          </>
        )}
        {canRun && (
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault()
              if (command.trim()) setPending({ kind: "run", command: command.trim() })
            }}
          >
            <label for="command">Command</label>
            <input
              id="command"
              class="mono"
              placeholder="systemctl --failed"
              value={command}
              onInput={(e) => setCommand(e.currentTarget.value)}
            />
            <button type="submit" disabled={command.trim() === ""}>
              Run
            </button>
          </form>
        )}
      </div>
      {message && (
        <p class={message.ok ? "banner ok" : "banner error"} role="status">
          {message.text}
        </p>
      )}
      {result && (
        <pre class="output" data-testid="run-output">
          {result.stdout}
          {result.stderr && <span class="stderr">{result.stderr}</span>}
        </pre>
      )}
      {pending && (
        <Confirm
          title={
            pending.kind === "run" ? "Run a command" : pending.kind === "heal" ? "Heal now" : "Set desired closure"
          }
          confirmLabel={pending.kind === "run" ? "Run it" : pending.kind === "heal" ? "Heal" : "Set it"}
          busy={busy}
          onConfirm={act}
          onCancel={() => setPending(null)}
        >
          {pending.kind === "run" ? (
            <>
              <p>
                Run on <strong>{node.id}</strong> as the agent's user (root), with a 30 s limit:
              </p>
              <pre class="output">{pending.command}</pre>
            </>
          ) : (
            <>
              <p>
                {pending.kind === "heal"
                  ? "Activate the desired closure again on "
                  : "Make this the desired closure of "}
                <strong>{node.id}</strong>; its agent switches to it:
              </p>
              <pre class="output">{pending.closure}</pre>
            </>
          )}
        </Confirm>
      )}
    </section>
  )
}
