#!/usr/bin/env bash
# AWS Batch: one array job of N tasks shares the elements of a dataset.
#
#   BUCKET=my-bucket QUEUE=my-queue N=20 bash examples/aws-batch/submit.sh params.jsonl
#
# Needs: the AWS CLI, a job queue, and an image with cloudmux (see
# examples/Dockerfile) pushed to a registry the compute environment reads.
set -euo pipefail
: "${BUCKET:?}" "${QUEUE:?}" "${IMAGE:?the worker image}"
: "${JOB_ROLE_ARN:?the tasks role, with permissions/aws-iam-policy.json}"
: "${EXECUTION_ROLE_ARN:?the role Fargate pulls the image with}"
N=${N:-20}
INPUT=${1:--}

# Coordinator: the dataset and a leased session (elements of a task that is
# stopped or dies are handed out again, up to 3 attempts).
ds=$(cloudmux new "s3://$BUCKET/jobs" --tag batch --from "$INPUT")
mux_id=$(cloudmux session "$ds" --lease 120 --max-attempts 3)
echo "mux id: $mux_id"

# The job definition (see job-definition.json); the mux id goes in as an
# environment variable at submission, with the array size, so that task I
# (AWS_BATCH_JOB_ARRAY_INDEX) starts at element I*E/N.
sed -e "s|IMAGE|$IMAGE|" -e "s|EXECUTION_ROLE_ARN|$EXECUTION_ROLE_ARN|" -e "s|JOB_ROLE_ARN|$JOB_ROLE_ARN|" \
  "$(dirname "$0")/job-definition.json" > /tmp/cloudmux-job-definition.json
aws batch register-job-definition --cli-input-json file:///tmp/cloudmux-job-definition.json >/dev/null

aws batch submit-job \
  --job-name cloudmux-sweep \
  --job-queue "$QUEUE" \
  --job-definition cloudmux-worker \
  --array-properties "size=$N" \
  --container-overrides "environment=[{name=CLOUDMUX_MUX_ID,value=$mux_id},{name=CLOUDMUX_SHARD_COUNT,value=$N}]"

# Follow it from anywhere with the same credentials:
echo "cloudmux stat '$mux_id' --watch"
