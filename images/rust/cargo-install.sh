#!/bin/sh
# Usage: cargo-install.sh ROOT SPEC... Installs crates (`cargo add` specs,
# e.g. `serde@1`) into ROOT/rust (ROOT is /packages for cached images,
# /packages/session for a session) and writes the rustc flags that let
# single-file programs use them.
set -eu
root=$1
shift
export CARGO_HOME=/tmp/cargo-home CARGO_TERM_COLOR=never
mkdir -p "$root/rust"
cd "$root/rust"
if [ ! -f Cargo.toml ]; then
    cargo init --lib --name sandbox_deps --vcs none --quiet
fi
cargo add --quiet "$@"
cargo build --quiet
cargo metadata --format-version 1 | ROOT="$root/rust" python3 -c '
import glob, json, os, sys
base = os.environ["ROOT"]
meta = json.load(sys.stdin)
root = meta["resolve"]["root"]
node = next(n for n in meta["resolve"]["nodes"] if n["id"] == root)
flags = ["-L", "dependency=%s/target/debug/deps" % base]
for dep in node["deps"]:
    name = dep["name"]
    rlibs = sorted(glob.glob("%s/target/debug/deps/lib%s-*.rlib" % (base, name)), key=os.path.getmtime)
    if rlibs:
        flags += ["--extern", "%s=%s" % (name, rlibs[-1])]
open(os.path.join(base, "rustc-flags"), "w").write(" ".join(flags) + "\n")
print("crates ready:", ", ".join(d["name"] for d in node["deps"]))
'
