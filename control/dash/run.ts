// The dashboard's loop: rows from a source, keys from the terminal, a frame drawn after each change and
// once a second (heartbeat ages move), until q or Ctrl+C; the terminal is restored before it returns.
// Ctrl+Z suspends it (screen.ts gives the terminal back, and takes it again on `fg`).

import type { RowSource } from "./control-plane-source.ts"
import { initialState, parseKeys, press, withRows } from "./model.ts"
import { openScreen } from "./screen.ts"
import { frame, pageSize } from "./view.ts"

export function runDashboard(source: RowSource, color: boolean): Promise<void> {
  const screen = openScreen()
  let state = initialState(source.name)
  const redraw = () => {
    const { cols, rows } = screen.size()
    screen.draw(frame(state, cols, rows, Date.now(), color))
  }
  return new Promise((resolve) => {
    const follow = source.follow((rows, error) => {
      state = rows ? withRows(state, rows) : { ...state, error, loaded: true }
      redraw()
    })
    const tick = setInterval(redraw, 1000)
    const finish = () => {
      follow.stop()
      clearInterval(tick)
      process.off("SIGINT", finish)
      screen.restore()
      resolve()
    }
    screen.onKeys((input) => {
      for (const key of parseKeys(input)) {
        if (key === "suspend") screen.suspend()
        // Ctrl+\ ends the dashboard as SIGQUIT does (131), as it would in cooked mode.
        else if (key === "abort") process.kill(process.pid, "SIGQUIT")
        else state = press(state, key, pageSize(state, screen.size().rows))
      }
      if (state.quit) finish()
      else redraw()
    })
    screen.onRepaint(redraw)
    process.on("SIGINT", finish)
    redraw()
  })
}
