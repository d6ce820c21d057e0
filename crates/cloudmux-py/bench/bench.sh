#!/usr/bin/env bash
# cloudmux for Python against the original library, side by side, in one run:
# local disk, N elements, W multiprocessing workers (fork), no work per
# element; and the same steps with the `cloudmux` command (W `cloudmux work`
# processes), for the per-element cost of the Python layer.
#
#   bash crates/cloudmux-py/bench/bench.sh        # ELEMENTS=10000 WORKERS=16
#
# BENCH_DIRS names the folders to run in, one run of each contender in each
# (default: ${TMPDIR:-/tmp}, the local disk; add /dev/shm for tmpfs).
# Installs, each into a venv of its own: cloudly 0.3.8 from PyPI (cached in
# $CLOUDMUX_BENCH_CACHE, default ~/.cache/cloudmux-py-bench), and cloudmux
# built by maturin in release mode. Builds the command with
# `cargo build --release -p cloudmux-cli`. Prints one JSON line per
# contender, then a Markdown table.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRATE="$(cd "$HERE/.." && pwd)"
REPO="$(cd "$CRATE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
ELEMENTS="${ELEMENTS:-10000}"
WORKERS="${WORKERS:-16}"
CACHE="${CLOUDMUX_BENCH_CACHE:-$HOME/.cache/cloudmux-py-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

work="$(mktemp -d "${TMPDIR:-/tmp}/cloudmux-py-bench-tools.XXXXXX")"
roots=()
cleanup() {
    rm -rf "$work" "${roots[@]}"
}
trap cleanup EXIT

if [[ ! -x "$CACHE/cloudly/bin/python" ]] ||
    ! "$CACHE/cloudly/bin/python" -c 'import cloudly.util.multiplexer' 2>/dev/null; then
    echo "installing cloudly 0.3.8 into $CACHE/cloudly" >&2
    "$PYTHON" -m venv "$CACHE/cloudly"
    "$CACHE/cloudly/bin/python" -m pip install -q --disable-pip-version-check "cloudly==0.3.8"
fi

echo "building cloudmux (release) and the cloudmux command" >&2
"$PYTHON" -m venv "$work/cmx"
"$work/cmx/bin/python" -m pip install -q --disable-pip-version-check "maturin==1.16.0"
# shellcheck disable=SC1091
source "$CRATE/maturin-env.sh"
maturin_cargo "$work/bin"
(cd "$CRATE" && PATH="$work/bin:$PATH" "$work/cmx/bin/maturin" build --release --out "$work/dist" >&2)
"$work/cmx/bin/python" -m pip install -q --disable-pip-version-check "$work/dist"/cloudmux-*.whl
(cd "$REPO" && cargo build --release -q -p cloudmux-cli >&2)
cli="$CARGO_TARGET_DIR/release/cloudmux"

for dir in ${BENCH_DIRS:-${TMPDIR:-/tmp}}; do
    root="$(mktemp -d "$dir/cloudmux-py-bench.XXXXXX")"
    roots+=("$root")
    results="$work/results-${#roots[@]}.jsonl"
    for contender in cloudly cloudmux cli; do
        echo "running $contender in $dir" >&2
        py="$work/cmx/bin/python"
        [[ $contender == cloudly ]] && py="$CACHE/cloudly/bin/python"
        "$py" "$HERE/bench.py" "$contender" --elements "$ELEMENTS" --workers "$WORKERS" \
            --root "$root/$contender" --cli "$cli" | tee -a "$results"
    done
    "$PYTHON" "$HERE/table.py" "$results" "$dir"
done
