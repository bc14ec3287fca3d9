#!/bin/sh
# Installs crates (`cargo add` specs, e.g. `serde@1`) into /packages/rust and
# writes the rustc flags that let single-file programs use them.
set -eu
export CARGO_HOME=/tmp/cargo-home CARGO_TERM_COLOR=never
mkdir -p /packages/rust
cd /packages/rust
if [ ! -f Cargo.toml ]; then
    cargo init --lib --name sandbox_deps --vcs none --quiet
fi
cargo add --quiet "$@"
cargo build --quiet
cargo metadata --format-version 1 | python3 -c '
import glob, json, os, sys
meta = json.load(sys.stdin)
root = meta["resolve"]["root"]
node = next(n for n in meta["resolve"]["nodes"] if n["id"] == root)
flags = ["-L", "dependency=/packages/rust/target/debug/deps"]
for dep in node["deps"]:
    name = dep["name"]
    rlibs = sorted(glob.glob("/packages/rust/target/debug/deps/lib%s-*.rlib" % name), key=os.path.getmtime)
    if rlibs:
        flags += ["--extern", "%s=%s" % (name, rlibs[-1])]
open("/packages/rust/rustc-flags", "w").write(" ".join(flags) + "\n")
print("crates ready:", ", ".join(d["name"] for d in node["deps"]))
'
