// The confirmation step every action takes: a modal <dialog> (focus moves into it, Escape cancels)
// that says exactly what will happen to which node before anything is sent.
import type { ComponentChildren } from "preact"
import { useEffect, useRef } from "preact/hooks"

export function Confirm(props: {
  title: string
  children: ComponentChildren
  confirmLabel: string
  busy: boolean
  onConfirm(): void
  onCancel(): void
}) {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const d = ref.current
    if (d && !d.open) d.showModal()
    return () => d?.close()
  }, [])
  return (
    <dialog
      ref={ref}
      class="confirm"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault()
        props.onCancel()
      }}
    >
      <h2 id="confirm-title">{props.title}</h2>
      <div class="confirm-body">{props.children}</div>
      <div class="confirm-buttons">
        <button type="button" class="quiet" onClick={props.onCancel} disabled={props.busy}>
          Cancel
        </button>
        <button type="button" class="primary danger" onClick={props.onConfirm} disabled={props.busy}>
          {props.busy ? "Working…" : props.confirmLabel}
        </button>
      </div>
    </dialog>
  )
}
