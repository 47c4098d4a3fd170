#!/usr/bin/env bash
# Checks that Cargo.toml's `rust-version` is what the dependency tree needs: the highest
# `rust-version` among the packages that building the library compiles (normal and build
# dependencies, all features, all platforms; dev-dependencies are reported, not counted).
# Exits non-zero when the two differ. When that toolchain is installed (or `--install`
# gets it from rustup), it also checks the library with it, with the default features and
# the testing kit (`testing`), and without default features, since the crate's own code could need a newer Rust than its dependencies.
#
#   scripts/msrv.sh            # the comparison, plus the build check if the toolchain is there
#   scripts/msrv.sh --install  # first try `rustup toolchain install <version> --profile minimal`
set -euo pipefail
cd "$(dirname "$0")/.."

install=0
case "${1:-}" in
  --install) install=1 ;;
  "") ;;
  *) echo "usage: $0 [--install]" >&2; exit 2 ;;
esac

# Prints the toolchain to check (the declared version as major.minor.patch) on stdout and
# the report on stderr; exits 1 on a mismatch.
toolchain=$(cargo metadata --format-version 1 --all-features | python3 -c '
import json, sys

meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]

def version(text):
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

def show(v):
    return ".".join(map(str, v[:2])) if v[2] == 0 else ".".join(map(str, v))

def tree(root_kinds):
    # What building the root compiles: for the root the edges of `root_kinds`, for every
    # other package its normal and build dependencies (dev-dependencies of a dependency
    # are never built).
    seen, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        kinds = root_kinds if pid == root else {None, "build"}
        for dep in nodes[pid]["deps"]:
            if {k["kind"] for k in dep["dep_kinds"]} & kinds:
                stack.append(dep["pkg"])
    seen.discard(root)
    return seen

def highest(ids):
    declared = [(version(packages[i]["rust_version"]), packages[i]) for i in ids
                if packages[i].get("rust_version")]
    if not declared:
        return None, []
    top = max(v for v, _ in declared)
    return top, sorted("{} {}".format(p["name"], p["version"]) for v, p in declared if v == top)

normal = tree({None, "build"})
with_dev = tree({None, "build", "dev"})
need, by = highest(normal)
need_dev, by_dev = highest(with_dev)
crate = packages[root]
declared = crate.get("rust_version")

report = sys.stderr
print("rust-version in Cargo.toml:        {}".format(declared or "(none)"), file=report)
if need is None:
    print("no dependency declares a rust-version", file=report)
    sys.exit(1)
print("needed by the library dependencies: {} ({}; {} packages)".format(
    show(need), ", ".join(by), len(normal)), file=report)
if need_dev is not None:
    print("with dev-dependencies (tests, benches, examples): {} ({})".format(
        show(need_dev), ", ".join(by_dev[:4]) + (", ..." if len(by_dev) > 4 else "")), file=report)
if declared is None or version(declared) != need:
    print("MISMATCH: set rust-version = \"{}\" in Cargo.toml".format(show(need)), file=report)
    sys.exit(1)
print(".".join(map(str, version(declared))))
')

echo "rust-version matches the dependency tree"
if [ "$install" = 1 ] && command -v rustup >/dev/null; then
  # Bounded: where the download is not refused but hangs, CI must not hang with it.
  timeout 600 rustup toolchain install "$toolchain" --profile minimal \
    || echo "rustup could not install $toolchain: the build check is skipped"
fi
if command -v rustup >/dev/null && rustup toolchain list | grep -q "^$toolchain-"; then
  echo "== cargo +$toolchain check --lib --features testing"
  cargo "+$toolchain" check --lib --features testing
  echo "== cargo +$toolchain check --lib --no-default-features"
  cargo "+$toolchain" check --lib --no-default-features
else
  echo "toolchain $toolchain is not installed: the build check is skipped (run with --install)"
fi
