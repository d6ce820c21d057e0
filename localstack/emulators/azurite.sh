#!/usr/bin/env bash
# Azurite (Azure Blob Storage emulator) plug-in for localstack/up.sh.
#
# Sourced by up.sh, which calls emu_install, emu_start, emu_ready and emu_env.
# Runnable on its own as well:
#   bash localstack/emulators/azurite.sh up     # install, start, wait, print env
#   bash localstack/emulators/azurite.sh env    # print the export line
#   bash localstack/emulators/azurite.sh down   # stop the pid we started
#
# Installs with npm into ${CLOUDMUX_EMULATOR_CACHE:-$HOME/.cache/cloudmux-emulators}/azurite-3.35.0
# (3.35.0 is the newest release that runs on Node 20 without engine warnings).
# Starts in memory on 127.0.0.1:${AZURITE_BLOB_PORT:-10000} with --skipApiVersionCheck,
# because the official Rust SDK sends an x-ms-version newer than Azurite knows.
# Quirk worth knowing: Azurite answers a lost create (If-None-Match: *) with
# 409 BlobAlreadyExists where real Azure answers 412.

AZURITE_VERSION="${AZURITE_VERSION:-3.35.0}"
AZURITE_BLOB_PORT="${AZURITE_BLOB_PORT:-10000}"

_azurite_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_azurite_state="${CLOUDMUX_STATE_DIR:-$_azurite_here/../.state}"
_azurite_prefix="${CLOUDMUX_EMULATOR_CACHE:-$HOME/.cache/cloudmux-emulators}/azurite-$AZURITE_VERSION"
_azurite_bin="$_azurite_prefix/node_modules/.bin/azurite-blob"

emu_install() {
    if [ -x "$_azurite_bin" ]; then
        return 0
    fi
    command -v npm >/dev/null || { echo "azurite: npm is required (Node 20)" >&2; return 1; }
    mkdir -p "$_azurite_prefix"
    # A private package.json keeps npm from walking up into another project.
    [ -f "$_azurite_prefix/package.json" ] ||
        echo '{"name":"cloudmux-azurite","private":true}' >"$_azurite_prefix/package.json"
    npm install --prefix "$_azurite_prefix" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >&2
    [ -x "$_azurite_bin" ] || { echo "azurite: install failed" >&2; return 1; }
}

# Runs Azurite in the foreground: up.sh backgrounds it in its own process
# group and records the pid (the standalone mode below does too).
# --inMemoryPersistence refuses --location: nothing is written to disk. It runs
# from the state folder so that any stray file it makes lands there.
emu_start() {
    mkdir -p "$_azurite_state"
    cd "$_azurite_state" || return 1
    exec "$_azurite_bin" \
        --blobHost 127.0.0.1 --blobPort "$AZURITE_BLOB_PORT" \
        --inMemoryPersistence --skipApiVersionCheck --disableTelemetry --silent
}

emu_ready() {
    # Any GET is answered (an error document is fine); the Server header names azurite-blob.
    # (Headers are captured first: `curl | grep -q` fails under pipefail when
    # grep exits early and curl gets SIGPIPE.)
    # Python rather than curl: a fresh machine has python3 but maybe no curl.
    python3 - "http://127.0.0.1:$AZURITE_BLOB_PORT/devstoreaccount1?comp=list" <<'PY' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=2)
    server = r.headers.get("Server", "")
except urllib.error.HTTPError as e:
    server = e.headers.get("Server", "")
sys.exit(0 if "azurite-blob" in server.lower() else 1)
PY
}

emu_env() {
    # The published, well-known development account of the Azure storage emulators.
    local key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
    echo "export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$AZURITE_BLOB_PORT/devstoreaccount1;'"
}

# The integration suite against Azurite (the connection string comes from the
# env file up.sh writes).
emu_test_env() {
    echo "CLOUDMUX_TEST_BACKEND=azure"
}

# The backend crate's own emulator tests (cargo arguments).
emu_crate_tests() {
    echo "-p cloudmux-azure --features emulator-tests --test emulator"
}

emu_stop() {
    local pidfile="$_azurite_state/azurite.pid"
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-up}" in
    up)
        emu_install
        mkdir -p "$_azurite_state"
        (emu_start >"$_azurite_state/azurite.log" 2>&1 </dev/null &
            echo $! >"$_azurite_state/azurite.pid")
        for _ in $(seq 1 100); do
            if emu_ready; then
                emu_env
                exit 0
            fi
            # Died at start (EADDRINUSE when an old Azurite still holds the port)?
            if ! kill -0 "$(cat "$_azurite_state/azurite.pid")" 2>/dev/null; then
                echo "azurite: exited at start:" >&2
                cat "$_azurite_state/azurite.log" >&2
                exit 1
            fi
            sleep 0.2
        done
        echo "azurite: not ready after 20 s; see $_azurite_state/azurite.log" >&2
        exit 1
        ;;
    install) emu_install ;;
    env) emu_env ;;
    down) emu_stop ;;
    *)
        echo "usage: $0 [up|install|env|down]" >&2
        exit 2
        ;;
    esac
fi
