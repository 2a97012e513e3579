// The web dashboard's routes on the control plane's port. `index.html` is a Bun HTML import: Bun
// bundles it with its script (preact, uPlot) and stylesheet, lazily on the first request when run
// from source, and ahead of time into the executable under `bun build --compile` (dist/chimera), so
// neither needs a build step of its own. The page's Content-Security-Policy is in its <meta> tag,
// since Bun serves an HTML bundle's headers itself; the page also refuses to run inside a frame.
import dashboard from "./index.html"

export const dashboardRoutes = { "/": dashboard }
