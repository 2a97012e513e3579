// `chimera watch` on an interval shorter than a pass: the ticks that come while a pass runs are
// skipped, and that is said in a line like the watch's own, not as a JSON log record mixed into them.
// The pass is slow for real: its target accepts the TCP connection and never says a word of SSH, so
// each pass waits out its --timeout.
import { expect, test } from "bun:test"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { streamText } from "./support/stream.ts"
import { requireTool, runOk } from "./support/tools.ts"

const MAIN = join(import.meta.dir, "../control/main.ts")

test("a tick that comes while the last pass still runs is skipped, said in plain words", async () => {
  const dir = await mkdtemp(join(tmpdir(), "chimera-watch-skip-"))
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  try {
    const config = join(dir, "default.nix")
    await writeFile(
      config,
      'derivation { name = "chimera-watch-skip"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }\n',
    )
    const key = join(dir, "id_ed25519")
    await runOk([requireTool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key])
    const proc = Bun.spawn(
      [
        process.execPath,
        MAIN,
        "watch",
        "--interval",
        "1",
        "--timeout",
        "5",
        "--identity",
        key,
        "--config",
        config,
        "--targets",
        `root@127.0.0.1:${silent.port}`,
      ],
      {
        cwd: dir,
        env: { ...process.env, NO_COLOR: "1", CHIMERA_CONFIG_FILE: "", HOME: dir, CHIMERA_DATA_DIR: join(dir, "data") },
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
      },
    )
    const stderr = streamText(proc.stderr)
    try {
      const timer = setTimeout(() => proc.kill("SIGTERM"), 20_000)
      const ended = await stderr.until((text) => text.includes("this tick is skipped"))
      clearTimeout(timer)
      expect({ ended, stderr: stderr.text }).toMatchObject({ ended: false })
    } finally {
      proc.kill("SIGTERM")
      await proc.exited
    }
    expect(stderr.text).toContain("warning the previous pass is still running; this tick is skipped\n")
    expect(stderr.text).not.toContain('"level"')
  } finally {
    silent.stop(true)
    await rm(dir, { recursive: true, force: true })
  }
}, 60_000)
