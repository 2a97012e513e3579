// A table that renders only the rows in its scroll window (plus a margin), with spacer rows above and
// below standing for the rest. Rows have one fixed height (the stylesheet's --row), which is what
// makes the window a simple division. The header stays a real <thead>, so it reads as a table.
import type { ComponentChildren } from "preact"
import { useEffect, useRef, useState } from "preact/hooks"

const ROW = 34
const MARGIN = 12

export function VirtualRows(props: {
  label: string
  columns: string[]
  count: number
  rowKey(i: number): string
  renderRow(i: number): ComponentChildren
}) {
  const box = useRef<HTMLDivElement>(null)
  const [view, setView] = useState({ top: 0, height: 800 })

  useEffect(() => {
    const el = box.current
    if (!el) return
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight || 800 })
    measure()
    el.addEventListener("scroll", measure, { passive: true })
    const ro = new ResizeObserver(measure)
    ro.observe(el)
    return () => {
      el.removeEventListener("scroll", measure)
      ro.disconnect()
    }
  }, [])

  const first = Math.max(0, Math.floor(view.top / ROW) - MARGIN)
  const last = Math.min(props.count, Math.ceil((view.top + view.height) / ROW) + MARGIN)
  const indexes = Array.from({ length: Math.max(0, last - first) }, (_, k) => first + k)
  return (
    <div class="table-box" ref={box}>
      <table class="grid" aria-label={props.label} aria-rowcount={props.count + 1}>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th key={c} scope="col" class={`col-${c.toLowerCase()}`}>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {first > 0 && (
            <tr class="spacer">
              <td colSpan={props.columns.length} style={{ height: `${first * ROW}px` }} />
            </tr>
          )}
          {indexes.map((i) => (
            <tr key={props.rowKey(i)} aria-rowindex={i + 2}>
              {props.renderRow(i)}
            </tr>
          ))}
          {last < props.count && (
            <tr class="spacer">
              <td colSpan={props.columns.length} style={{ height: `${(props.count - last) * ROW}px` }} />
            </tr>
          )}
        </tbody>
      </table>
    </div>
  )
}
