# shellcheck shell=bash
# Helpers shared by up.sh, down.sh, run-tests.sh and the emulator plug-ins.

emu_now() { date +%s.%N; }

# Seconds since $1 (from emu_now), one decimal.
emu_since() { awk -v a="$1" -v b="$(emu_now)" 'BEGIN { printf "%.1f", b - a }'; }
emu_since_int() { awk -v a="$1" -v b="$(emu_now)" 'BEGIN { printf "%d", b - a }'; }

# A message nobody can miss.
emu_loud() {
    echo "" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! $*" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}

# emu_http URL [PATTERN]: succeeds when URL answers (any status below 500
# when no pattern is given; else a body containing PATTERN).
emu_http() {
    local url="$1" pattern="${2:-}" body
    if command -v curl >/dev/null 2>&1; then
        body=$(curl -sS --max-time 2 "$url" 2>/dev/null) || return 1
    else
        body=$(python3 - "$url" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode("utf-8", "replace"))
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code < 500 else 1)
PY
        ) || return 1
    fi
    [[ -z "$pattern" ]] || grep -Eq "$pattern" <<<"$body"
}

# Stops the process group recorded in a pid file: SIGTERM, then SIGKILL after
# a few seconds (LocalStack may hang on SIGTERM).
emu_stop_pidfile() {
    local pidfile="$1" pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid ignored SIGTERM: SIGKILL" >&2
        fi
        # The group may hold children that outlive the leader: kill what is left.
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# A venv in the cache, created with the given interpreter when missing.
# emu_venv DIR PYTHON
# Plug-ins check each step's status themselves: up.sh calls emu_install as an
# `if` condition, where `set -e` does not apply.
emu_venv() {
    local dir="$1" py="$2"
    if [[ ! -x "$dir/bin/python" ]]; then
        rm -rf "$dir"
        "$py" -m venv "$dir" &&
            "$dir/bin/python" -m pip install --quiet --upgrade pip
    fi
}
