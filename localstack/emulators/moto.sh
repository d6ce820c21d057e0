# shellcheck shell=bash
# moto (S3 only), pinned to 5.2.5, in a venv in the emulator cache, served by
# moto_serial.py, which serializes requests: stock moto checks a precondition
# and then writes without a lock, so two conditional writers can both win a
# race.
# Port: 5055; CLOUDMUX_MOTO_PORT changes it.
# Quirks:
# - Unsigned conditional writes are refused with a bare 403: the suite signs
#   its requests with dummy keys.
MOTO_PORT="${CLOUDMUX_MOTO_PORT:-5055}"
MOTO_VENV="$EMU_CACHE/moto-5.2.5"

emu_install() {
    if [[ -f "$MOTO_VENV/.complete" ]]; then
        echo "moto: cached in $MOTO_VENV"
        return 0
    fi
    emu_venv "$MOTO_VENV" python3 || return 1
    "$MOTO_VENV/bin/python" -m pip install --quiet 'moto[s3]==5.2.5' flask flask-cors || return 1
    touch "$MOTO_VENV/.complete"
}

# moto reads MOTO_PORT itself (settings.moto_server_port, for the URLs it
# builds); stock moto_server sets it, moto_serial.py does not.
emu_start() {
    export MOTO_PORT
    exec "$MOTO_VENV/bin/python" "$EMU_HERE/emulators/moto_serial.py" \
        --host 127.0.0.1 --port "$MOTO_PORT"
}

emu_ready() {
    emu_http "http://127.0.0.1:$MOTO_PORT/moto-api/"
}

emu_env() {
    echo "export CLOUDMUX_MOTO_ENDPOINT=http://127.0.0.1:$MOTO_PORT"
}

# The integration suite against moto: the S3 backend with dummy credentials.
emu_test_env() {
    echo "CLOUDMUX_TEST_BACKEND=s3 CLOUDMUX_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT" \
        "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
}
