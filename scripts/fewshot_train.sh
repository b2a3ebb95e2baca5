#!/usr/bin/env bash
# All-class few-shot table (CoOp's 1/2/4/8/16 shots): train and test on all classes.
#   SHOTS=4 bash scripts/fewshot_train.sh <dataset> <seed> [KEY VALUE ...]
if [ $# -lt 2 ]; then echo "usage: SHOTS=K bash scripts/fewshot_train.sh <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
DATASET=$1; SEED=$2; shift 2
CFG="${CFG:-$(default_cfg "$DATASET" fewshot)}"
NAME="$(run_name "$DATASET" "$TRAILING_SPLIT" "$@")"
run_train "$DATASET" "$SEED" "$OUTPUT/fewshot/$NAME/shots_$SHOTS/$TRAINER/$CFG/seed$SEED" \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES all "$@"
