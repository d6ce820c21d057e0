#!/usr/bin/env bash
# The Python package's tests, as the README's test command runs them:
#
#   bash crates/cloudmux-py/ci.sh [pytest arguments]
#
# 1. A fresh venv with maturin and pytest from PyPI.
# 2. The wheel, built by maturin in the dev profile into the shared target
#    dir. pyo3's build scripts see exactly what a workspace build
#    (`cargo clippy`, `cargo doc`) sees: maturin's cargo runs through a small
#    wrapper (maturin-env.sh) that drops the PYO3_* variables maturin adds.
#    Without that, pyo3 and this crate would be compiled again on every run,
#    and again by the next clippy. The crate asks for the workspace's
#    features of shared crates (see Cargo.toml), so nothing else is compiled
#    either. What maturin compiled is printed.
# 3. The wheel installed into the venv, and pytest.
#
# Environment:
#   PYTHON                        the venv's interpreter (default: python3)
#   CARGO_TARGET_DIR              as for cargo (default: the repository's target/)
#   CLOUDMUX_S3_ENDPOINT          an S3 emulator for the S3 tests. Unset, with
#                                 CLOUDMUX_REQUIRE_EMULATORS=1, this script starts
#                                 moto (localstack/up.sh) and stops it afterwards.
#   CLOUDMUX_REQUIRE_EMULATORS=1  S3 tests fail instead of being skipped without one
#   CLOUDMUX_REQUIRE_CLI=1        the mixed-session test fails instead of being
#                                 skipped without the cloudmux command (default
#                                 when CI is set); it is $CARGO_TARGET_DIR/debug/cloudmux
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
MATURIN="maturin==1.16.0"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export CLOUDMUX_REQUIRE_CLI="${CLOUDMUX_REQUIRE_CLI:-${CI:+1}}"

t0=$SECONDS
work="$(mktemp -d "${TMPDIR:-/tmp}/cloudmux-py-ci.XXXXXX")"
started_moto=""
cleanup() {
    if [[ -n "$started_moto" ]]; then
        # Only the emulator this script started.
        # shellcheck disable=SC1091
        (source "$REPO/localstack/lib.sh" && emu_stop_pidfile "$REPO/localstack/.state/moto.pid")
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n--- cloudmux-py: %s (%ds)\n' "$*" "$((SECONDS - t0))"; }

step "venv with $MATURIN and pytest"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$MATURIN" pytest

step "wheel (dev profile, target dir $CARGO_TARGET_DIR)"
# shellcheck source=maturin-env.sh
source "$HERE/maturin-env.sh"
maturin_cargo "$work/bin"
(cd "$HERE" && PATH="$work/bin:$PATH" "$work/venv/bin/maturin" build --profile dev \
    --out "$work/dist" 2>&1) | tee "$work/build.log" | grep -vE '^\s+(Compiling|Fresh|Checking|Blocking)' || true
compiled="$(grep -E '^\s+Compiling ' "$work/build.log" | sed -E 's/^ +Compiling //; s/ \(.*//' | paste -sd, - || true)"
echo "maturin compiled: ${compiled:-nothing}"
wheel="$(ls "$work/dist"/cloudmux-*.whl)"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel"

if [[ -z "${CLOUDMUX_S3_ENDPOINT:-}" && "${CLOUDMUX_REQUIRE_EMULATORS:-0}" == 1 ]]; then
    step "S3 emulator (moto)"
    pidfile="$REPO/localstack/.state/moto.pid"
    if ! { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
        started_moto=1
    fi
    CLOUDMUX_EMULATORS=moto bash "$REPO/localstack/up.sh"
    # shellcheck disable=SC1091
    source "$REPO/localstack/.state/env"
    export CLOUDMUX_S3_ENDPOINT="$CLOUDMUX_MOTO_ENDPOINT"
fi

step "pytest"
cd "$HERE"
"$work/venv/bin/python" -m pytest -ra "$@"
step "done"
