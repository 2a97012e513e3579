// The dashboard's entry: refuse to run inside another site's frame (a clickjacked "Confirm" must be
// impossible, and a <meta> CSP cannot say frame-ancestors), then render the app into #app.
import { render } from "preact"
import { App } from "./ui/app.tsx"

const root = document.getElementById("app")
if (root) {
  if (window.top !== window.self) {
    root.textContent = "The Chimera dashboard does not run inside a frame. Open it in its own tab."
  } else {
    render(<App />, root)
  }
}
