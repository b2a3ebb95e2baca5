#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 1: train on all classes of SOURCE (default imagenet), 16 shots.
#   bash scripts/xd_train.sh <seed> [KEY VALUE ...]
if [ $# -lt 1 ]; then echo "usage: bash scripts/xd_train.sh <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
SEED=$1; shift
SOURCE="${SOURCE:-imagenet}"
CFG="${CFG:-$(default_cfg "$SOURCE" xd)}"
NAME="$(run_name "$SOURCE" "$TRAILING_SPLIT" "$@")"
run_train "$SOURCE" "$SEED" "$OUTPUT/xd/train/$NAME/shots_$SHOTS/$TRAINER/$CFG/seed$SEED" \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES all "$@"
