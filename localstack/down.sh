#!/usr/bin/env bash
# Stops exactly the emulators up.sh started, by their recorded pids (each is
# the leader of its own process group): SIGTERM, then SIGKILL after 6 s.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EMU_STATE="$HERE/.state"
# shellcheck source=localstack/lib.sh
source "$HERE/lib.sh"
shopt -s nullglob
for pidfile in "$EMU_STATE"/*.pid; do
    name=$(basename "$pidfile" .pid)
    t0=$(emu_now)
    emu_stop_pidfile "$pidfile"
    echo "[$name] stopped in $(emu_since "$t0") s"
done
rm -f "$EMU_STATE/env"
