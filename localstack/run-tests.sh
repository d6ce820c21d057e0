#!/usr/bin/env bash
# Starts the emulators, runs the integration suite once per started emulator
# that declares a suite (emu_test_env) and then its backend crate's emulator
# tests (emu_crate_tests) where it names them, and always stops the emulators
# again. Exits non-zero when an emulator could not start or any suite failed.
#
# Everything is built and run as `cargo test --workspace ...`, the same
# package selection and so the same feature set as `cargo test --workspace`
# in scripts/test.sh: nothing is compiled a second time.
#
#   bash localstack/run-tests.sh                       # all four emulators
#   CLOUDMUX_EMULATORS=moto bash localstack/run-tests.sh
#   bash localstack/run-tests.sh -- --test-threads 4   # extra args for the test binary
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CLOUDMUX_REQUIRE_EMULATORS=1
# Debug builds of the cloud SDKs keep very large futures; one Azure suite run
# under heavy load overflowed a 2 MiB tokio worker stack. Threads that do not
# set their own size get 8 MiB.
export RUST_MIN_STACK="${RUST_MIN_STACK:-8388608}"
export EMU_HERE="$HERE" EMU_STATE="$HERE/.state"
export EMU_CACHE="${CLOUDMUX_EMULATOR_CACHE:-$HOME/.cache/cloudmux-emulators}"
# shellcheck source=localstack/lib.sh
source "$HERE/lib.sh"

extra=()
if [[ "${1:-}" == "--" ]]; then
    shift
    extra=("$@")
fi

trap 'bash "$HERE/down.sh"' EXIT

status=0
t0=$(emu_now)
if ! bash "$HERE/up.sh"; then
    emu_loud "run-tests.sh: up.sh failed (some emulator did not start)"
    status=1
fi
echo "run-tests.sh: up.sh took $(emu_since "$t0") s"
[[ -f "$EMU_STATE/env" ]] || exit 1
# shellcheck disable=SC1091
source "$EMU_STATE/env"

# Build once, outside the timed runs: exactly what `cargo test --workspace`
# builds (after scripts/test.sh's test step this is a no-op).
t0=$(emu_now)
(cd "$ROOT" && cargo test --workspace --no-run --quiet) || exit 1
echo "run-tests.sh: build took $(emu_since "$t0") s"

# Runs a cargo command in the workspace, its output also in the file $1;
# returns the command's status.
run_logged() {
    local log="$1"
    shift
    (cd "$ROOT" && "$@") 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}

# "N passed, N failed, N ignored" summed over the test binaries in a log.
counts() {
    awk '/^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($(i) ~ /^passed/) p += $(i - 1)
                if ($(i) ~ /^failed/) f += $(i - 1)
                if ($(i) ~ /^ignored/) g += $(i - 1)
            }
         }
         END { printf "%d passed, %d failed, %d ignored", p, f, g }' "$1"
}

# Stops one emulator and starts it again through up.sh (which rewrites the
# env file for that emulator only; this script sourced the full one already).
restart_emulator() {
    local name="$1"
    emu_stop_pidfile "$EMU_STATE/$name.pid"
    cp "$EMU_STATE/env" "$EMU_STATE/env.all"
    CLOUDMUX_EMULATORS="$name" bash "$HERE/up.sh"
    local ok=$?
    mv "$EMU_STATE/env.all" "$EMU_STATE/env"
    return $ok
}

results=()
rm -f "$EMU_STATE/measurements.txt"
for name in $CLOUDMUX_STARTED_EMULATORS; do
    unset -f emu_install emu_start emu_ready emu_env emu_test_env emu_crate_tests 2>/dev/null || true
    # shellcheck disable=SC1090
    source "$HERE/emulators/$name.sh"
    if ! declare -F emu_test_env >/dev/null; then
        continue
    fi
    read -r -a suite_env <<<"$(emu_test_env)"
    suite=(env "${suite_env[@]}" cargo test --workspace --test suite -- "${extra[@]}")
    log="$EMU_STATE/$name.suite.log"
    echo ""
    echo "=== integration suite on $name: ${suite_env[*]} ==="
    t0=$(emu_now)
    if run_logged "$log" "${suite[@]}"; then
        results+=("$name: PASSED in $(emu_since "$t0") s ($(counts "$log"))")
    elif ! emu_ready && restart_emulator "$name"; then
        # The emulator itself stopped answering (seen once with Azurite under
        # heavy load). Say so loudly, restart it, and run the suite once more;
        # a suite that fails against a live emulator is never retried.
        emu_loud "[$name] the emulator stopped answering during the suite; restarted, running it again"
        t0=$(emu_now)
        if run_logged "$log" "${suite[@]}"; then
            results+=("$name: PASSED in $(emu_since "$t0") s after an emulator restart ($(counts "$log"))")
        else
            results+=("$name: FAILED after $(emu_since "$t0") s, also after an emulator restart ($(counts "$log"))")
            status=1
        fi
    else
        results+=("$name: FAILED after $(emu_since "$t0") s ($(counts "$log"))")
        status=1
    fi
    # The backend crate's own emulator-only checks, when it has some: every
    # crate's `emulator` test binary, filtered to this emulator's checks.
    if declare -F emu_crate_tests >/dev/null; then
        filter="$(emu_crate_tests)"
        log="$EMU_STATE/$name.crate.log"
        echo ""
        echo "=== backend crate tests on $name: cargo test --workspace --test emulator -- --ignored $filter ==="
        t0=$(emu_now)
        if run_logged "$log" env "${suite_env[@]}" cargo test --workspace --test emulator -- --ignored "$filter"; then
            results+=("$name (crate tests): PASSED in $(emu_since "$t0") s ($(counts "$log"))")
        else
            results+=("$name (crate tests): FAILED after $(emu_since "$t0") s ($(counts "$log"))")
            status=1
        fi
    fi
done

# The Python package's tests, while the emulators are up (its S3 tests use
# moto): a wheel built in the shared target dir and pytest in a fresh venv.
py_ci="$ROOT/crates/cloudmux-py/ci.sh"
if [[ -f "$py_ci" ]]; then
    echo ""
    echo "=== the Python package (crates/cloudmux-py/ci.sh) ==="
    t0=$(emu_now)
    py_env=(CLOUDMUX_REQUIRE_EMULATORS=1 CLOUDMUX_REQUIRE_CLI=1)
    if [[ " $CLOUDMUX_STARTED_EMULATORS " == *" moto "* ]]; then
        py_env+=(CLOUDMUX_S3_ENDPOINT="$CLOUDMUX_MOTO_ENDPOINT" AWS_ACCESS_KEY_ID=test
            AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1)
    fi
    log="$EMU_STATE/python.log"
    if (cd "$ROOT" && env "${py_env[@]}" bash "$py_ci") 2>&1 | tee "$log"; then
        results+=("python: PASSED in $(emu_since "$t0") s ($(grep -Eo '[0-9]+ passed[^=]*' "$log" | tail -1))")
    else
        results+=("python: FAILED after $(emu_since "$t0") s")
        status=1
    fi
fi

echo ""
echo "=== summary ==="
if ((${#results[@]} == 0)); then
    emu_loud "no suite ran"
    status=1
fi
for r in "${results[@]}"; do
    echo "$r"
done
if [[ -f "$EMU_STATE/measurements.txt" ]]; then
    echo ""
    echo "=== measurements ==="
    cat "$EMU_STATE/measurements.txt"
fi
exit "$status"
