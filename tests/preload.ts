// Loaded before every test file (bunfig.toml). Nix must never reach for a binary cache from a test:
// the machine has no network but loopback, and a substituter lookup costs seconds of DNS time-outs.
import { setDefaultTimeout } from "bun:test"

process.env.NIX_CONFIG = `${process.env.NIX_CONFIG ?? ""}\nsubstituters =\n`
setDefaultTimeout(60_000)
