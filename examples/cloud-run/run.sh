#!/usr/bin/env bash
# Cloud Run: one job execution of N tasks shares the elements of a dataset.
#
#   BUCKET=my-bucket REGION=europe-west1 IMAGE=registry.example/cloudmux-worker \
#   SERVICE_ACCOUNT=worker@my-project.iam.gserviceaccount.com N=20 bash examples/cloud-run/run.sh params.jsonl
set -euo pipefail
: "${BUCKET:?}" "${REGION:?}" "${IMAGE:?the worker image}" "${SERVICE_ACCOUNT:?with permissions/gcs-role.yaml}"
N=${N:-20}
INPUT=${1:--}

# Coordinator: the dataset and a leased session.
ds=$(cloudmux new "gs://$BUCKET/jobs" --tag cloud-run --from "$INPUT")
mux_id=$(cloudmux session "$ds" --lease 120 --max-attempts 3)
echo "mux id: $mux_id"

# The job: N tasks, each running `cloudmux work` (the image's entrypoint is
# cloudmux). --max-retries 0: cloudmux retries elements itself, on any task.
gcloud run jobs deploy cloudmux-sweep \
  --region "$REGION" \
  --image "$IMAGE" \
  --service-account "$SERVICE_ACCOUNT" \
  --tasks "$N" \
  --parallelism "$N" \
  --max-retries 0 \
  --task-timeout 3h \
  --args="work,--jobs,2,--,/app/process,{}"

# One execution, with the mux id in every task's environment.
gcloud run jobs execute cloudmux-sweep \
  --region "$REGION" \
  --update-env-vars "CLOUDMUX_MUX_ID=$mux_id" \
  --wait

cloudmux stat "$mux_id"
