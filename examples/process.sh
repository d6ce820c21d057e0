#!/bin/sh
# A stand-in for your program: gets the element as its first argument
# (`{}`), and also in CLOUDMUX_ELEMENT (JSON), with CLOUDMUX_INDEX and
# CLOUDMUX_ATTEMPT. Exit 0 for success; any other status is a failed attempt.
set -eu
echo "task ${CLOUDMUX_WORKER_ID:-?}: element $CLOUDMUX_INDEX (attempt $CLOUDMUX_ATTEMPT): $1"
sleep 1
