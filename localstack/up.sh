#!/usr/bin/env bash
# Installs (when missing) and starts the local object-store emulators, without Docker.
#
#   bash localstack/up.sh            # the emulators named in CLOUDMUX_EMULATORS
#   CLOUDMUX_EMULATORS=fakegcs bash localstack/up.sh   # one emulator alone
#   source localstack/.state/env     # then: endpoints for the tests
#   bash localstack/down.sh          # stops them all
#
# Each emulator is a plug-in, emulators/<name>.sh, defining four functions:
#   emu_install  install into $EMU_CACHE if missing (cheap when already there)
#   emu_start    run the server in the foreground (up.sh backgrounds it in
#                its own session and records its pid)
#   emu_ready    exit 0 once the server answers its readiness probe
#   emu_env      print `export KEY=VALUE` lines naming its endpoint(s)
# and, optionally, emu_test_env printing the `KEY=VALUE` words that select it in
# the integration suite and emu_crate_tests printing the test-name filter of
# its backend crate's emulator tests (both used by run-tests.sh).
# Plug-ins find their folders in EMU_CACHE (installs), EMU_STATE (pid files,
# logs, scratch) and EMU_HERE (localstack/); they have no stop of their own.
#
# Environment:
#   CLOUDMUX_EMULATORS          names to start (default: "moto localstack fakegcs azurite")
#   CLOUDMUX_EMULATOR_CACHE     install cache (default: ~/.cache/cloudmux-emulators)
#   CLOUDMUX_REQUIRE_EMULATORS  1: any emulator that cannot be installed or
#                               started is an error (exit non-zero)
#   CLOUDMUX_READY_TIMEOUT      seconds to wait for each readiness probe (default 120)
#   CLOUDMUX_REUSE_EMULATORS    1: an emulator's port that already answers, from a
#                               process this script did not start, is used as it is
#                               (default: reported, and the emulator counts as failed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export EMU_HERE="$HERE"
export EMU_STATE="$HERE/.state"
export EMU_CACHE="${CLOUDMUX_EMULATOR_CACHE:-$HOME/.cache/cloudmux-emulators}"
EMULATORS="${CLOUDMUX_EMULATORS:-moto localstack fakegcs azurite}"
REQUIRE="${CLOUDMUX_REQUIRE_EMULATORS:-0}"
READY_TIMEOUT="${CLOUDMUX_READY_TIMEOUT:-120}"
mkdir -p "$EMU_STATE" "$EMU_CACHE"

# shellcheck source=localstack/lib.sh
source "$HERE/lib.sh"

started=()
failed=()
env_lines=()
t_all=$(emu_now)

for name in $EMULATORS; do
    plugin="$HERE/emulators/$name.sh"
    if [[ ! -f "$plugin" ]]; then
        emu_loud "unknown emulator '$name' (no $plugin)"
        failed+=("$name")
        continue
    fi
    unset -f emu_install emu_start emu_ready emu_env emu_test_env emu_crate_tests 2>/dev/null || true
    # shellcheck disable=SC1090
    source "$plugin"
    pidfile="$EMU_STATE/$name.pid"
    log="$EMU_STATE/$name.log"

    # Already running (a previous up.sh): keep it.
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && emu_ready; then
        echo "[$name] already running (pid $(cat "$pidfile"))"
        started+=("$name")
        env_lines+=("$(emu_env)")
        continue
    fi
    rm -f "$pidfile"

    # Something else already answers on its port (an emulator started by
    # hand, by another checkout's up.sh, or left over from a killed run):
    # starting a second copy would fail to bind while the probe, answered by
    # the other one, said ready, and the tests would run against an emulator
    # nobody here controls. Say so, and use it only when asked to.
    if emu_ready 2>/dev/null; then
        if [[ "${CLOUDMUX_REUSE_EMULATORS:-0}" == "1" ]]; then
            echo "[$name] already answering (not started here); using it (CLOUDMUX_REUSE_EMULATORS=1)"
            started+=("$name")
            env_lines+=("$(emu_env)")
            continue
        fi
        emu_loud "[$name] its port already answers, but not from an emulator this up.sh started (no live pid in $pidfile): stop that process, or set CLOUDMUX_REUSE_EMULATORS=1 to use it"
        failed+=("$name")
        continue
    fi

    t0=$(emu_now)
    if ! emu_install >"$EMU_STATE/$name.install.log" 2>&1; then
        emu_loud "[$name] INSTALL FAILED after $(emu_since "$t0") s; see $EMU_STATE/$name.install.log"
        tail -n 20 "$EMU_STATE/$name.install.log" >&2 || true
        failed+=("$name")
        continue
    fi
    echo "[$name] install: $(emu_since "$t0") s"

    t0=$(emu_now)
    # Its own session (and so its own process group): down.sh stops the group.
    # A fresh shell that sources the plug-in again, so emu_start can use the
    # plug-in's other functions and variables.
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
    setsid bash -c 'source "$1"; source "$2"; emu_start' emu-start "$HERE/lib.sh" "$plugin" \
        >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    ok=0
    while (($(emu_since_int "$t0") < READY_TIMEOUT)); do
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            break
        fi
        if emu_ready; then
            ok=1
            break
        fi
        sleep 0.2
    done
    if ((ok == 0)); then
        emu_loud "[$name] DID NOT BECOME READY in $(emu_since "$t0") s; last lines of $log:"
        tail -n 30 "$log" >&2 || true
        emu_stop_pidfile "$pidfile"
        failed+=("$name")
        continue
    fi
    echo "[$name] start until ready: $(emu_since "$t0") s (pid $(cat "$pidfile"))"
    started+=("$name")
    env_lines+=("$(emu_env)")
done

{
    echo "# written by localstack/up.sh"
    echo "export CLOUDMUX_STARTED_EMULATORS=\"${started[*]:-}\""
    for l in "${env_lines[@]}"; do
        echo "$l"
    done
} >"$EMU_STATE/env"

echo "up.sh: started [${started[*]:-}] in $(emu_since "$t_all") s; env in $EMU_STATE/env"
if ((${#failed[@]} > 0)); then
    emu_loud "up.sh: NOT AVAILABLE: ${failed[*]}"
    if [[ "$REQUIRE" == "1" ]]; then
        exit 1
    fi
fi
