#!/usr/bin/env bash
# run-shard.sh -- one shard, as a pod of the Indexed Job in shards-job.yaml runs it:
# JOB_COMPLETION_INDEX (set by Kubernetes) is the shard index and the state-id suffix,
# SHARD_COUNT the Job's completions. The state lives in meltano's system database,
# MELTANO_DATABASE_URI, which every pod shares. `--force`: podReplacementPolicy Failed
# starts a replacement pod only once the failed one has terminated, so no other pod runs
# this shard, and a SIGKILLed meltano (OOM) would otherwise lock the state id for 5 minutes.
set -euo pipefail
: "${JOB_COMPLETION_INDEX:?set by Kubernetes in an Indexed Job}" "${SHARD_COUNT:?}"
: "${MELTANO_DATABASE_URI:?the shared system database (postgresql+psycopg://...)}"
export TAP_AVICENNA_SHARD_COUNT="$SHARD_COUNT" TAP_AVICENNA_SHARD_INDEX="$JOB_COMPLETION_INDEX"
exec "${MELTANO:-meltano}" run --force --state-id-suffix "shard$JOB_COMPLETION_INDEX" \
  tap-avicenna target-postgres
