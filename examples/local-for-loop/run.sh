#!/usr/bin/env bash
# A plain `for` loop of worker processes on one machine.
#
# The coordinator creates a dataset and a leased session and passes the mux
# id to the workers in CLOUDMUX_MUX_ID; each worker runs `cloudmux work`,
# which runs the command once per element it obtains. Point ROOT at a bucket
# (s3://..., gs://..., az://...) and the same loop runs on many machines.
#
#   ROOT=./data WORKERS=4 ELEMENTS=100 bash examples/local-for-loop/run.sh
set -euo pipefail

ROOT=${ROOT:-$(mktemp -d)}
WORKERS=${WORKERS:-4}
ELEMENTS=${ELEMENTS:-100}

# Coordinator: the elements (here the integers 0..ELEMENTS-1) and a session
# whose elements are retried up to 3 times if a worker fails or dies.
ds=$(seq 0 $((ELEMENTS - 1)) | cloudmux new "$ROOT" --tag for-loop)
CLOUDMUX_MUX_ID=$(cloudmux session "$ds" --lease 30 --max-attempts 3)
export CLOUDMUX_MUX_ID
echo "mux id: $CLOUDMUX_MUX_ID"

# Workers: each squares its elements into results/<index>.txt.
mkdir -p results
pids=()
for w in $(seq 1 "$WORKERS"); do
  # shellcheck disable=SC2016 # expanded by the worker's shell, per element
  cloudmux work --worker-id "local-$w" -- \
    sh -c 'echo $((CLOUDMUX_ELEMENT * CLOUDMUX_ELEMENT)) > "results/$CLOUDMUX_INDEX.txt"' &
  pids+=("$!")
done
status=0
for p in "${pids[@]}"; do
  wait "$p" || status=1
done

# Coordinator again: every element completed?
# shellcheck disable=SC1010 # the subcommand, not the shell keyword
cloudmux done
cloudmux stat
exit "$status"
