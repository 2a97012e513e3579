// Event-driven drift detection: inotify (fs.watch) on the directories that hold the system profile,
// /run/current-system and /run/booted-system. The links themselves cannot be watched: nix-env and
// switch-to-configuration replace them atomically (a new symlink renamed over the old one), which a watch
// on the old link never sees. A burst of events (nix-env writes a generation link, then renames the
// profile) is debounced into one check. The interval poll in main.ts stays as the fallback for what
// inotify misses (a directory that does not exist yet, an overflowed queue, network filesystems).
import { type FSWatcher, watch } from "node:fs"
import { basename, dirname } from "node:path"
import { createLogger } from "../protocol/log.ts"

const log = createLogger("watcher")

export interface LinkWatcher {
  close(): void
}

export function watchLinks(links: string[], onChange: () => void, debounceMs = 25): LinkWatcher {
  const byDir = new Map<string, Set<string>>()
  for (const link of links) {
    const names = byDir.get(dirname(link)) ?? new Set<string>()
    names.add(basename(link))
    byDir.set(dirname(link), names)
  }
  let timer: Timer | null = null
  const fire = () => {
    timer = null
    onChange()
  }
  const watchers: FSWatcher[] = []
  for (const [dir, names] of byDir) {
    try {
      const watcher = watch(dir, { persistent: false }, (_event, filename) => {
        // Other files share these directories (/run holds much else); only our links' names matter,
        // including the temp names Nix and ln use next to them (`.123_system`, `system-7-link`).
        const name = filename?.toString() ?? null
        if (name !== null && ![...names].some((n) => name.includes(n))) return
        if (timer === null) timer = setTimeout(fire, debounceMs)
      })
      watcher.on("error", (err) => log.warn("watch failed; relying on the poll", { dir, error: err }))
      watchers.push(watcher)
    } catch (err) {
      log.warn("cannot watch directory; relying on the poll", { dir, error: err })
    }
  }
  log.debug("watching", { dirs: [...byDir.keys()] })
  return {
    close() {
      if (timer) clearTimeout(timer)
      for (const w of watchers) w.close()
    },
  }
}
