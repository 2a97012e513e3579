"""An integrator's client of `chimera code --mode rpc`, written the way a Python script drives it.

Usage: /usr/bin/python3 rpc_client.py CHIMERA ARGS...   (the command that starts the RPC mode)

It writes raw bytes to the process's stdin as a careless writer does: a command split over two
writes, two commands in one write, a command with bytes that are not UTF-8, a line of 1 MiB, CRLF,
the last command without a newline; and after each it reads stdout until the response to that
command's id (or any response, for lines with no id to wait on), with a 20 s limit. Every stdout line
must be one JSON object; each that is not is recorded. It prints one JSON object: {"steps": [{"name",
"lines"}], "not_json": [...], "exit": code, "stderr": text}.
"""
import json
import os
import select
import subprocess
import sys
import time

proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
pending = b""
not_json = []
steps = []


def read_until(done, limit=20.0):
    """Lines read until `done(line)` holds for one, that one included."""
    global pending
    seen = []
    until = time.monotonic() + limit
    while time.monotonic() < until:
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            try:
                line = json.loads(raw.decode("utf-8"))
            except ValueError:
                not_json.append(raw[:200].decode("utf-8", "replace"))
                continue
            if not isinstance(line, dict):
                not_json.append(raw[:200].decode("utf-8", "replace"))
                continue
            seen.append(line)
            if done(line):
                return seen
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
    seen.append({"type": "timeout"})
    return seen


def response_to(id_):
    return lambda line: line.get("type") == "response" and line.get("id") == id_


def any_response(line):
    return line.get("type") == "response"


def write(data):
    proc.stdin.write(data)
    proc.stdin.flush()


def step(name, data, done, pause_after_first=None):
    if pause_after_first is None:
        write(data)
    else:
        write(data[:pause_after_first])
        time.sleep(0.3)
        write(data[pause_after_first:])
    steps.append({"name": name, "lines": read_until(done)})


step("split", b'{"type":"get_state","id":"split"}\n', response_to("split"), pause_after_first=12)
step("two", b'{"type":"get_state","id":"two-a"}\n{"type":"get_state","id":"two-b"}\n', response_to("two-b"))
step("latin1", b'{"type":"prompt","id":"latin1","message":"caf\xe9"}\n', any_response)
step("huge", b'{"type":"prompt","id":"huge","message":"' + b"x" * (1 << 20) + b'"}\n', any_response)
step("bad-id", b'{"type":"get_state","id":true}\n', any_response)
step("crlf", b'{"type":"get_state","id":"crlf"}\r\n', response_to("crlf"))
step("prompt", b'{"type":"prompt","id":"hello","message":"hello"}\n', response_to("hello"))
write(b'{"type":"get_state","id":"last"}')
proc.stdin.close()
steps.append({"name": "last", "lines": read_until(response_to("last"))})
code = proc.wait(20)
print(json.dumps({"steps": steps, "not_json": not_json, "exit": code, "stderr": proc.stderr.read().decode("utf-8", "replace")}))
