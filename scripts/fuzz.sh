#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, from the committed seed
# corpus, and prints each target's executions. Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`); without them it says so and exits 0, so CI
# stays green on machines that have only stable.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
#
# New corpus entries go to a temporary directory (the committed seeds are only read).
# A crash, a timeout (10 s per input) or an out-of-memory fails the script; the input is
# in fuzz/artifacts/<target>/ (ignored by git): reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); skipping fuzzing"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz); skipping fuzzing"
    exit 0
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz.sh: building the fuzz targets"
cargo +nightly fuzz build -O 2>&1 | tail -n 1

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "corpus/$target"
    echo "fuzz.sh: $target for ${seconds}s"
    log="$scratch/$target.log"
    extra=()
    if [ "$target" = http_connection ]; then
        # The server's connection threads outlive each input (they are detached, by
        # design), so LeakSanitizer reports their thread-local destructor lists.
        extra+=(-detect_leaks=0)
    fi
    if ! cargo +nightly fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz.sh: $target FAILED (see above; the input is in fuzz/artifacts/$target/)"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "fuzz.sh: $target ok: $runs executions in ${seconds}s, $(ls "$scratch/$target" | wc -l) new corpus entries"
done
