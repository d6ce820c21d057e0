# shellcheck shell=bash
# LocalStack core (S3 only), pinned to 2026.3.0, in a venv in the emulator
# cache, run as a plain Python process (no Docker).
# Port: 4566; CLOUDMUX_LOCALSTACK_PORT changes it.
# Quirks:
# - It needs CPython 3.13 (3.11 fails): found under `pyenv root` or as
#   python3.13.
# - The `localstack start` CLI demands an auth token; the runtime module that
#   emu_start runs does not.
# - It may hang on SIGTERM: lib.sh's emu_stop_pidfile follows with SIGKILL.
# - Conditional delete is answered 501.
LOCALSTACK_PORT="${CLOUDMUX_LOCALSTACK_PORT:-4566}"
LOCALSTACK_VENV="$EMU_CACHE/localstack-2026.3.0"

# Prints the path of a CPython 3.13 interpreter (fails when there is none).
localstack_python() {
    local c root
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for c in "$root"/versions/3.13.*/bin/python3.13 "$(command -v python3.13 2>/dev/null)"; do
        if [[ -n "$c" && -x "$c" ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

emu_install() {
    if [[ -f "$LOCALSTACK_VENV/.complete" ]]; then
        echo "localstack: cached in $LOCALSTACK_VENV"
        return 0
    fi
    local py
    if ! py=$(localstack_python); then
        echo "LocalStack needs CPython 3.13 and none was found (pyenv versions/3.13.*, python3.13)." >&2
        return 1
    fi
    emu_venv "$LOCALSTACK_VENV" "$py" || return 1
    "$LOCALSTACK_VENV/bin/python" -m pip install --quiet 'localstack-core[base-runtime]==2026.3.0' \
        'moto-ext>=5.1.22' 'cbor2<6' 'pyopenssl<26' service_identity || return 1
    touch "$LOCALSTACK_VENV/.complete"
}

# A fresh, empty file-system root under the state folder on every start.
emu_start() {
    local fs="$EMU_STATE/localstack-fs"
    rm -rf "$fs"
    mkdir -p "$fs"
    export OVERRIDE_IN_DOCKER=0 SERVICES=s3 EAGER_SERVICE_LOADING=1 GATEWAY_SERVER=hypercorn \
        GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" LOCALSTACK_HOST="127.0.0.1:$LOCALSTACK_PORT" \
        DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 FILESYSTEM_ROOT="$fs"
    exec "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main
}

emu_ready() {
    emu_http "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health" '"s3": *"(running|available)"'
}

emu_env() {
    echo "export CLOUDMUX_LOCALSTACK_ENDPOINT=http://127.0.0.1:$LOCALSTACK_PORT"
}

# The integration suite against LocalStack: the S3 backend with dummy credentials.
# The fleet scenarios of the `cloudmux` command (OS processes, SIGKILL,
# SIGSTOP, locks) run against this emulator only (CLOUDMUX_TEST_FLEET=1).
emu_test_env() {
    echo "CLOUDMUX_TEST_BACKEND=s3 CLOUDMUX_S3_ENDPOINT=http://127.0.0.1:$LOCALSTACK_PORT" \
        "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1" \
        "CLOUDMUX_TEST_FLEET=1"
}
