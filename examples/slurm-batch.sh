#!/bin/bash
# LLaVA-Rad findings for the MIMIC-CXR test set as a Slurm array job: one shard per array task, one GPU each.
#
#   sbatch examples/slurm-batch.sh                 # the shards (8 array tasks); prints "Submitted batch job JOBID"
#   sbatch --dependency=afterany:JOBID examples/slurm-batch.sh merge   # then one merged file
#
# Each task runs `llava-rad batch --shard auto` (shard SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
# SLURM_ARRAY_TASK_COUNT, by a hash of the study id) into its own predictions file. A task that is killed,
# preempted or requeued resumes where it stopped: every finished study is already fsync'd in its file, and
# the same command skips it. SIGTERM (scancel, preemption) stops cleanly (exit 143). Research use only.
#
#SBATCH --job-name=llava-rad
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.log

set -uo pipefail

MANIFEST=${MANIFEST:-/data/llava-rad-mimic-cxr-annotation/1.0.0/chat_test_MIMIC_CXR_all_gpt4extract_rulebased_v1.json}
IMAGES=${IMAGES:-/data/mimic-cxr-jpg/2.0.0/files}
MODEL=${MODEL:-$HOME/.cache/llava-rad/models/llava-rad-f16}   # written by `llava-rad pull` / `llava-rad convert`
OUT=${OUT:-predictions}
LLAVA_RAD=${LLAVA_RAD:-npx llava-rad}

if [ "${1:-}" = merge ]; then
  # one record per study, in manifest order; exit 3 (and a list on stderr) if a study is missing or failed.
  # --drop-failed makes a file the official metric scripts read as is (they need a prediction per line).
  $LLAVA_RAD merge "$OUT/predictions.jsonl" "$OUT"/shard-*.jsonl \
    --manifest "$MANIFEST" --mimic-test-filter --drop-failed
  exit $?
fi

mkdir -p "$OUT" logs
$LLAVA_RAD batch "$MANIFEST" --mimic-test-filter --image-root "$IMAGES" --model "$MODEL" \
  --out "$OUT/shard-${SLURM_ARRAY_TASK_ID}.jsonl" --shard auto \
  --device cuda --concurrency 8
rc=$?
# exit 3: the shard finished, some studies failed (their records carry error.code; re-run with --retry-failed
# to try them again). Do not fail (or requeue) the array task for that.
if [ "$rc" -eq 3 ]; then exit 0; fi
exit "$rc"
