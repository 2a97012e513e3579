import { describe, expect, test } from "bun:test"
import { assessCommand, registryListing, splitCommandLine } from "./command-registry.ts"

const risk = (line: string) => assessCommand(line).risk

describe("command registry", () => {
  test("reads simple commands, quotes, separators and redirections", () => {
    const { commands, opaque } = splitCommandLine(`ls -la "/my dir" && echo 'a;b' | wc -l > out.txt 2>/dev/null; pwd`)
    expect(opaque).toBeNull()
    expect(commands.map((c) => c.words.map((w) => w.text))).toEqual([
      ["ls", "-la", "/my dir"],
      ["echo", "a;b"],
      ["wc", "-l"],
      ["pwd"],
    ])
    expect(commands[2]?.writes.map((w) => w.target)).toEqual(["out.txt", "/dev/null"])
  })

  test("reading is low, changing is medium, destroying is high", () => {
    expect(risk("ls -la /tmp")).toBe("low")
    expect(risk("systemctl status nginx")).toBe("low")
    expect(risk("systemctl -n 50 status nginx")).toBe("low")
    expect(risk("systemctl restart nginx")).toBe("medium")
    expect(risk("systemctl stop nginx")).toBe("high")
    expect(risk("rm -rf /var/lib/x")).toBe("high")
    expect(risk("nix-store -q --references /run/current-system")).toBe("low")
    expect(risk("nix-store -q --delete /nix/store/x")).toBe("high")
    expect(risk("ip addr show")).toBe("low")
    expect(risk("ip route")).toBe("low")
    expect(risk("nix path-info -r /run/current-system")).toBe("low")
    expect(risk("reboot")).toBe("high")
  })

  test("a line is as risky as its riskiest part, past wrappers and assignments", () => {
    expect(risk("uptime; reboot")).toBe("high")
    expect(risk("FOO=1 sudo -u postgres nice -n 5 rm x")).toBe("high")
    expect(risk("sudo ls")).toBe("medium")
    expect(risk("timeout 10 cat /etc/hostname")).toBe("low")
    expect(risk("LANG=C ls")).toBe("low")
    expect(risk("sleep 1 & reboot")).toBe("high")
  })

  test("fails closed: unknown programs and whatever it cannot read are high", () => {
    expect(risk("frobnicate --now")).toBe("high")
    expect(risk(`bash -c "rm -rf /"`)).toBe("high")
    expect(risk("echo $(reboot)")).toBe("high")
    expect(risk("echo `id`")).toBe("high")
    expect(risk("eval x")).toBe("high")
    expect(risk("echo 'unterminated")).toBe("high")
  })

  // Each of these was shown to run a high-risk action while an earlier reader rated it low or medium.
  test.each([
    "busybox rm -rf /x",
    "cp /usr/bin/rm ./d; ./d -rf /x",
    "tmux new -d 'rm -rf /x'",
    "nix shell nixpkgs#coreutils -c rm -rf /x",
    "nix store gc",
    `awk 'BEGIN{system("rm -rf x")}'`,
    "sed -n '1e rm -rf x' f",
    "cat <(rm -rf x)",
    "ip route del default",
    "ip link set eth0 down",
    "ip netns exec n rm -rf x",
    "env -S 'rm -rf x'",
    "env --split-string='rm -rf x'",
    "LESSOPEN='|rm -rf x %s' less /etc/hostname",
    "LD_PRELOAD=/tmp/x.so ls",
    "export LESSOPEN='|rm -rf x %s'",
    "PATH=/tmp/evil:$PATH ls",
    "echo x 1<>/etc/crontab",
    "echo x >| /etc/sudoers",
    "echo x > '/etc/x'",
    "echo x >//etc/x",
    "echo x > /etc/hosts",
    "! rm -rf x",
    "if rm -rf x; then :; fi",
    "for i in 1; do rm -rf x; done",
    "coproc rm -rf x",
    "f()(rm -rf x); f",
    "r\\\nm -rf x",
    "$'rm' -rf x",
    "rm{,} -rf x",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell line, not a template
    "rm${IFS}-rf${IFS}x",
    "X=rm; $X -rf x",
    "$BASH -c 'rm -rf x'",
    "/???/bin/r? -rf x",
    "echo 'rm -rf x' | sh",
    "sh </tmp/s",
    "systemctl -n 1 poweroff",
    "systemctl stop{,} sshd",
    "systemctl start reboot.target",
    "systemctl emergency",
    "systemctl kexec",
    "cat <<EOF\nx\nEOF",
    "'rm' -rf x",
  ])("high: %p", (line) => {
    expect(risk(line)).toBe("high")
  })

  test("redirections: /dev/null is nothing, the working directory and /tmp medium, elsewhere high", () => {
    expect(risk("ls 2>/dev/null")).toBe("low")
    expect(risk("ls 2>&1 | grep x")).toBe("low")
    expect(risk("ls >&2")).toBe("low")
    expect(risk("echo hi > /tmp/x")).toBe("medium")
    expect(risk("echo hi >> notes.txt")).toBe("medium")
    expect(risk("echo hi >> /etc/hosts")).toBe("high")
    expect(risk("ls &> /var/log/x")).toBe("high")
  })

  test("the listing has seed 001's shape", () => {
    const listing = registryListing()
    expect(listing.total_commands).toBe(Object.keys(listing.commands).length)
    expect(listing.commands.ls).toMatchObject({ category: "filesystem.content", risk_level: "low" })
    expect(listing.categories).toContain("filesystem")
  })
})
