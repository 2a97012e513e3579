import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { assessCommand } from "./command-assessment.ts"
import { REGISTRY, registryListing } from "./command-registry.ts"
import { parseShellLine } from "./shell-words.ts"

const risk = (line: string) => assessCommand(line).risk

// What operators type every day: these must stay low or medium, or the allow-list is useless.
const EVERYDAY: [string, "low" | "medium"][] = [
  ["systemctl status", "low"],
  ["systemctl status nginx.service --no-pager -n 50", "low"],
  ["systemctl -n 50 status nginx", "low"],
  ["systemctl list-units --failed", "low"],
  ["journalctl -u x -n 50", "low"],
  ["journalctl -u nginx.service --since '1 hour ago' --no-pager", "low"],
  ["journalctl -b -1 -p err", "low"],
  ["df -h", "low"],
  ["uptime", "low"],
  ["cat /etc/os-release", "low"],
  ["nix-store -q --references /run/current-system", "low"],
  ["nix-store -qR /run/current-system", "low"],
  ["readlink /run/current-system", "low"],
  ["readlink -f /run/current-system", "low"],
  ["ls -la /var/log", "low"],
  ["ls -la /var/log 2>/dev/null | head -n 20", "low"],
  ["ls /var/log/*.log", "low"],
  ["cd /var/log && ls -la *.log", "low"],
  ["ps aux | grep nginx", "low"],
  ["free -m; uptime; df -h", "low"],
  ["ip addr show", "low"],
  ["ip -br a", "low"],
  ["ss -tlnp", "low"],
  ["uname -a", "low"],
  ["nixos-version", "low"],
  ["du -sh /var/log", "low"],
  ["grep -i error /var/log/messages", "low"],
  ["tail -n 100 /var/log/messages", "low"],
  ["hostnamectl", "low"],
  ["date +%s", "low"],
  ["nix path-info -rS /run/current-system", "low"],
  ["find /var/log -name '*.log' -mtime -1", "low"],
  ["test -f /etc/hostname && echo yes", "low"],
  ["[ -d /tmp ] && echo dir", "low"],
  ["LANG=C ls", "low"],
  ["timeout 10 cat /etc/hostname", "low"],
  ["cd /tmp && ls", "low"],
  ["systemctl restart nginx", "medium"],
  ["sudo systemctl restart nginx", "medium"],
  ["sudo ls", "medium"],
  ["echo hi > /tmp/x", "medium"],
  ["echo hi >> /tmp/notes.txt", "medium"],
  ["chmod 644 /tmp/notes.txt", "medium"],
  ["wget -q -O /tmp/page http://127.0.0.1:8080/", "medium"],
  ["kill -TERM 1234", "medium"],
  ["kill -9 1234 5678", "medium"],
  ["kill -s KILL 1234", "medium"],
  ["kill -l", "medium"],
  ["cp /etc/hosts /tmp/hosts", "medium"],
  ["tar -czf /tmp/b.tar.gz ./data", "medium"],
  ["mkdir -p /tmp/work", "medium"],
  ["curl -sS -o /tmp/page http://127.0.0.1:8080/", "medium"],
  ["chmod 0755 /tmp/tool", "medium"],
  ["chmod u+x,g-s /tmp/tool", "medium"],
  ["nixos-rebuild dry-activate", "medium"],
]

// The outside attack's four commands, and more of each kind: all ran a high-risk action while rated
// low or medium by a reader that looked for dangerous constructs instead of requiring known ones.
const ATTACKS = [
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell lines, not templates
  "x='$(rm -f /tmp/c1)'; echo ${x@P}",
  "x='a[$(rm -f /tmp/c2)]'; echo $[x]",
  "echo x > /tmp/../var/tmp/f",
  "printf -v PATH /tmp/evil",
  "x='a[$(rm -f /tmp/c)]'; y[x]=1",
  "test -v 'a[$(rm -f /tmp/c)]'",
  "[ -v 'a[$(rm -f /tmp/c)]' ]",
  "unset 'a[$(rm -f /tmp/c)]'",
  "echo $((a[$(rm -f /tmp/c)]))",
  "declare -n r=PATH",
  "read -r x",
  "mapfile x",
  "export PATH=/tmp",
  "alias ls='rm -f /tmp/c'",
  "trap 'rm -f /tmp/c' EXIT",
  "builtin echo x",
  "command rm -f /tmp/c",
  "exec rm -f /tmp/c",
  "eval 'rm -f /tmp/c'",
  "source /tmp/x",
  ". /tmp/x",
  "set -k",
  "cmd=rm; $cmd -f /tmp/c",
  "/???/bin/r? -f /tmp/c",
  "r\\\nm -f /tmp/c",
  "cat <<EOF\nx\nEOF",
  "cat <<< x",
  "echo x >//etc/x",
  "echo x > /tmp/a/b",
  "ls >& /etc/x",
  "ls > /proc/self/root/etc/x",
  "ls > .bashrc",
  "cd /etc && echo x > passwd",
  "cd /etc && cp /tmp/x passwd",
  "chmod --reference=/tmp/r /etc/shadow /tmp/x",
  // A later outside attack: a setuid root shell left in /tmp, and curl's write-out writing anywhere.
  "chmod 4755 /tmp/rootsh",
  "chmod 2755 /tmp/rootsh",
  "chmod u+s /tmp/rootsh",
  "chmod a=rwxs /tmp/rootsh",
  "chmod g+rs /tmp/rootsh",
  "chmod u-w+s /tmp/rootsh",
  "chmod u+x-r+s /tmp/rootsh",
  "chmod ug=rx+s /tmp/rootsh",
  "chmod u=g+s /tmp/rootsh",
  "curl -s -o /dev/null -w '%output{>>/root/.ssh/authorized_keys}ssh-ed25519 AAAA x' http://127.0.0.1/",
  "curl --write-out '%output{/etc/x}y' http://127.0.0.1/",
  "curl -O http://127.0.0.1/authorized_keys",
  "wget http://127.0.0.1/authorized_keys",
  "uniq /tmp/*",
  "nixos-rebuild build",
  "systemctl start 'reb*'",
  "systemctl start systemd-reboot.service",
  "nix-env -p /tmp/p --set /nix/store/x",
  "nix build --no-link -o /tmp/r .#x",
  "gunzip -N /tmp/x.gz",
  "PROMPT_COMMAND='rm -f /tmp/c'",
  "LANG=../../tmp/x ls",
  "sort -o /etc/passwd /etc/passwd",
  "sort --compress-program=sh x",
  "uniq a /etc/passwd",
  "tar xf a.tar --to-command='rm -f /tmp/c'",
  "tar cf x.tar *",
  "tar xzf a.tgz",
  "find . -delete",
  "find . -fprint /etc/x",
  "less '+!rm -f /tmp/c' /etc/hostname",
  "date -s 2020-01-01",
  "date 010101012020",
  "hostname evil",
  "journalctl --vac=1s",
  "ss -K",
  "ip -batch /tmp/cmds",
  "./ls",
  "/nix/store/abc-x/bin/ls",
  "nix --option build-hook /tmp/x build .",
  "nix-build -E x",
  "systemctl enable --now foo",
  "hostnamectl hostname x",
  "ln -s /etc/passwd /tmp/l",
  "cp -P /proc/self/root /tmp/r",
  "cp x /etc/passwd",
  "tee /tmp/../etc/x",
  "chmod 777 /etc/shadow",
  "sudo -s",
  "env -C /etc ls",
  "time -o /etc/x ls",
  "echo !!",
  'echo "!!"',
  "^ls^rm",
  "ls\rrm",
  "ls;; rm",
  "; ls",
  "ls &&",
  // Every process the caller may signal, init, or the caller's own group: the node goes down.
  "kill -9 -1",
  "kill -KILL -1",
  "kill -s 9 -1",
  "kill -- -1",
  "kill -9 1",
  "kill 0",
  "kill -9 1234 -1",
  "pkill -f .",
  "pkill -9 -x sshd",
]

describe("command assessment", () => {
  test("everyday operator commands stay low or medium", () => {
    expect(EVERYDAY.map(([line]) => [line, risk(line)])).toEqual(EVERYDAY)
  })

  test.each(ATTACKS)("high: %p", (line) => {
    expect(risk(line)).toBe("high")
  })

  test("reads simple commands, quotes, separators and redirections", () => {
    const parsed = parseShellLine(`ls -la "/my dir" && echo 'a;b' | wc -l > out.txt 2>/dev/null; pwd`)
    if (!parsed.ok) throw new Error(parsed.reason)
    expect(parsed.commands.map((c) => c.words.map((w) => w.text))).toEqual([
      ["ls", "-la", "/my dir"],
      ["echo", "a;b"],
      ["wc", "-l"],
      ["pwd"],
    ])
    expect(parsed.commands[2]?.redirects.map((r) => r.target.text)).toEqual(["out.txt", "/dev/null"])
  })

  test("a line is as risky as its riskiest part, past wrappers and assignments", () => {
    expect(risk("uptime; reboot")).toBe("high")
    expect(risk("LANG=C sudo -u postgres nice -n 5 rm x")).toBe("high")
    expect(risk("sleep 1 & reboot")).toBe("high")
    expect(risk("systemctl stop nginx")).toBe("high")
    expect(risk("systemctl start reboot.target")).toBe("high")
    expect(risk("nix-store -q --delete /nix/store/x")).toBe("high")
  })

  test("the reason names what was not understood", () => {
    expect(assessCommand("printf -v PATH x").reasons.join()).toContain("printf -v")
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell line, not a template
    expect(assessCommand("echo ${x@P}").reasons.join()).toContain("`$` expansion")
  })

  test("the listing has the registry's shape, with each entry's known flags", () => {
    const listing = registryListing()
    expect(listing.total_commands).toBe(Object.keys(REGISTRY).length)
    expect(listing.commands.ls).toMatchObject({ category: "filesystem.content", risk_level: "low" })
    expect(listing.commands.sort).toMatchObject({ known_flags: { short: expect.stringContaining("n") } })
    expect(listing.categories).toContain("filesystem")
  })
})

// Property: whatever dynamic shell surrounds a destructive core, the line is never below high.
const CORES = [
  "rm -f /tmp/x",
  "rm -rf /var/lib/x",
  "dd if=/dev/zero of=/dev/sda",
  "mkfs.ext4 /dev/sda1",
  "echo x > /etc/passwd",
  "echo x >> /etc/sudoers",
  "cp /tmp/x /etc/shadow",
  "tee /etc/hosts",
  "reboot",
  "systemctl stop sshd",
  "nix-collect-garbage -d",
  "chmod 777 /etc/shadow",
]
const quoteSingle = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
const word = fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/)
/** Ways to run `core` that the registry cannot read without running a shell. */
const WRAPS: ((core: string, name: string) => string)[] = [
  (c, n) => `${n}=${quoteSingle(`$(${c})`)}; echo \${${n}@P}`,
  (c, n) => `${n}=${quoteSingle(`a[$(${c})]`)}; echo $[${n}]`,
  (c, n) => `${n}=${quoteSingle(`a[$(${c})]`)}; echo $((${n}))`,
  (c, n) => `${n}=${quoteSingle(`a[$(${c})]`)}; ${n}2[${n}]=1`,
  (c, n) => `${n}=${quoteSingle(`a[$(${c})]`)}; test -v ${n}`,
  (c) => `echo $(${c})`,
  (c) => `echo "\`${c}\`"`,
  (c) => `cat <(${c})`,
  (c) => `(${c})`,
  (c) => `{ ${c}; }`,
  (c) => `eval ${quoteSingle(c)}`,
  (c) => `bash -c ${quoteSingle(c)}`,
  (c) => `sh -c ${quoteSingle(c)}`,
  (c) => `source <(echo ${quoteSingle(c)})`,
  (c) => `. /dev/stdin <<EOF\n${c}\nEOF`,
  (c) => `sh <<< ${quoteSingle(c)}`,
  (c, n) => `declare -n ${n}=PATH; ${c}`,
  (c, n) => `printf -v ${n} %s ${quoteSingle(c)}; $${n}`,
  (c, n) => `read ${n} <<< ${quoteSingle(c)}; $${n}`,
  (c, n) => `mapfile ${n} < /dev/null; ${c}`,
  (c, n) => `${n}=${quoteSingle(c.split(" ")[0] ?? "")}; $${n} ${c.split(" ").slice(1).join(" ")}`,
  (c, n) => `alias ${n}=${quoteSingle(c)}; ${n}`,
  (c) => `trap ${quoteSingle(c)} EXIT`,
  (c) => `command ${c}`,
  (c) => `builtin ${c}`,
  (c) => `exec ${c}`,
  (c) => `nohup ${c}`,
  (c) => `sudo ${c}`,
  (c) => `timeout 5 ${c}`,
  (c) => `env LANG=C ${c}`,
  (c) => `PATH=/tmp ${c}`,
  (c) => `IFS=x ${c}`,
  (c) => `LD_PRELOAD=/tmp/x.so ${c}`,
  (c) => `BASH_ENV=/tmp/x ${c}`,
  (c) => `${c[0]}\\\n${c.slice(1)}`,
  (c) => `\\${c}`,
  (c) => `'${c.split(" ")[0]}' ${c.split(" ").slice(1).join(" ")}`,
  (c) => `${c.replace(/^(\S)(\S*)/, "$1''$2")}`,
  (c) => `${c.replace(/^(\S*)(\S)/, "$1?")}`,
  (c) => `${c.replace(/^(\S+)/, "$1{,}")}`,
  (c) => `if true; then ${c}; fi`,
  (c) => `for i in 1; do ${c}; done`,
  (c) => `! ${c}`,
  (c) => `coproc ${c}`,
  (c) => `xargs -0 ${c} < /dev/null`,
  (c) => `find /tmp -maxdepth 0 -exec ${c} \\;`,
  (c) => `awk 'BEGIN{system("${c}")}'`,
  (c) => `echo ${quoteSingle(c)} | sh`,
  (c) => c,
]
const SAFE = ["uptime", "ls -la /var/log", "df -h", "true", "echo ok", "cat /etc/os-release"]
const SEPARATORS = ["; ", " && ", " || ", " | ", " & ", "\n"]

describe("the allow-list holds for generated lines", () => {
  test("dynamic shell around a destructive core is never below high", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CORES),
        fc.constantFrom(...WRAPS),
        word,
        fc.array(fc.tuple(fc.constantFrom(...SAFE), fc.constantFrom(...SEPARATORS)), { maxLength: 3 }),
        fc.array(fc.tuple(fc.constantFrom(...SEPARATORS), fc.constantFrom(...SAFE)), { maxLength: 3 }),
        (core, wrap, name, before, after) => {
          const line = [
            ...before.map(([s, sep]) => s + sep),
            wrap(core, name),
            ...after.map(([sep, s]) => sep + s),
          ].join("")
          const a = assessCommand(line)
          if (a.risk !== "high") throw new Error(`rated ${a.risk}: ${JSON.stringify(line)} (${a.reasons.join("; ")})`)
        },
      ),
      { numRuns: 5000 },
    )
  }, 60_000)

  test("any line holding `$`, a backquote, braces, parentheses or a here-document is high", () => {
    const special = fc.constantFrom("$", "`", "(", ")", "{", "}", "<<", "<<<", "\\\n", "!")
    fc.assert(
      fc.property(fc.constantFrom(...SAFE), special, fc.string({ maxLength: 8 }), (safe, s, tail) => {
        const line = `${safe} ${s}${tail.replaceAll("'", "")}`
        expect(risk(line)).toBe("high")
      }),
      { numRuns: 3000 },
    )
  }, 60_000)

  test("any text at all gets a rating and a reason, never an exception", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 200 })), (line) => {
        const a = assessCommand(line)
        expect(["low", "medium", "high"]).toContain(a.risk)
        if (a.risk === "high") expect(a.reasons.length).toBeGreaterThan(0)
      }),
      { numRuns: 1500 },
    )
  }, 60_000)

  test("everyday commands joined any way stay at their riskiest part, never high", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...EVERYDAY), { minLength: 1, maxLength: 4 }),
        fc.array(fc.constantFrom("; ", " && ", " || ", " | ", "\n"), { minLength: 3, maxLength: 3 }),
        (parts, seps) => {
          const line = parts.map(([l], i) => (i === 0 ? l : `${seps[(i - 1) % 3]}${l}`)).join("")
          const expected = parts.some(([, r]) => r === "medium") ? "medium" : "low"
          expect(risk(line)).toBe(expected)
        },
      ),
      { numRuns: 500 },
    )
  }, 60_000)
})
