# shellcheck shell=bash
# Azurite (Azure Blob Storage emulator), blob service only, in memory: every
# start is empty. Installed with npm into the emulator cache; pinned to 3.35.0,
# the newest release that runs on Node 20 without engine warnings
# (AZURITE_VERSION changes it).
# Port: 10000; AZURITE_BLOB_PORT changes it.
# Quirks:
# - The official Rust SDK sends an x-ms-version newer than Azurite knows:
#   it runs with --skipApiVersionCheck.
# - A lost create (If-None-Match: *) is answered 409 BlobAlreadyExists where
#   real Azure answers 412.
AZURITE_VERSION="${AZURITE_VERSION:-3.35.0}"
AZURITE_BLOB_PORT="${AZURITE_BLOB_PORT:-10000}"
AZURITE_PREFIX="$EMU_CACHE/azurite-$AZURITE_VERSION"
AZURITE_BIN="$AZURITE_PREFIX/node_modules/.bin/azurite-blob"

emu_install() {
    if [[ -f "$AZURITE_PREFIX/.complete" ]]; then
        echo "azurite: cached in $AZURITE_PREFIX"
        return 0
    fi
    command -v npm >/dev/null || { echo "azurite: npm is required (Node 20)" >&2; return 1; }
    mkdir -p "$AZURITE_PREFIX"
    # A private package.json keeps npm from walking up into another project.
    [[ -f "$AZURITE_PREFIX/package.json" ]] ||
        echo '{"name":"cloudmux-azurite","private":true}' >"$AZURITE_PREFIX/package.json"
    npm install --prefix "$AZURITE_PREFIX" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >&2 || return 1
    [[ -x "$AZURITE_BIN" ]] || { echo "azurite: install failed" >&2; return 1; }
    touch "$AZURITE_PREFIX/.complete"
}

# --inMemoryPersistence refuses --location: nothing is written to disk. It runs
# from the state folder so that any stray file it makes lands there.
emu_start() {
    cd "$EMU_STATE" || return 1
    exec "$AZURITE_BIN" \
        --blobHost 127.0.0.1 --blobPort "$AZURITE_BLOB_PORT" \
        --inMemoryPersistence --skipApiVersionCheck --disableTelemetry --silent
}

# Any GET is answered (an error document is fine); the Server header names
# azurite-blob. Python rather than curl: a fresh machine has python3 but
# maybe no curl.
emu_ready() {
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

# The test-name filter of its backend crate's emulator tests (run-tests.sh runs
# `cargo test --workspace --test emulator -- --ignored FILTER`).
emu_crate_tests() {
    echo "azurite::"
}
