#!/usr/bin/env bash
# Kubernetes: an Indexed Job whose pods share the elements of a dataset.
#
#   STORE=s3://my-bucket/jobs IMAGE=registry.example/cloudmux-worker bash examples/kubernetes/run.sh params.jsonl
set -euo pipefail
: "${STORE:?a folder URL: s3://..., gs://... or az://...}" "${IMAGE:?the worker image}"
INPUT=${1:--}

# Coordinator: the dataset and a leased session.
ds=$(cloudmux new "$STORE" --tag k8s --from "$INPUT")
CLOUDMUX_MUX_ID=$(cloudmux session "$ds" --lease 120 --max-attempts 3)
export CLOUDMUX_MUX_ID IMAGE
echo "mux id: $CLOUDMUX_MUX_ID"

envsubst < "$(dirname "$0")/job.yaml" | kubectl apply -f -
cloudmux stat "$CLOUDMUX_MUX_ID" --watch
kubectl wait --for=condition=complete job/cloudmux-sweep --timeout=1h
