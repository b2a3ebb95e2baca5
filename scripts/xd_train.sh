#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 1: train on all ImageNet classes (16 shots).
#   bash scripts/xd_train.sh <seed> [KEY VALUE ...]      (SOURCE=imagenet by default)
if [ $# -lt 1 ]; then echo "usage: bash scripts/xd_train.sh <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
SEED=$1; shift
SOURCE="${SOURCE:-imagenet}"
CFG="${CFG:-$(default_cfg "$SOURCE" xd)}"
require_file "configs/datasets/$SOURCE.yaml" "unknown dataset $SOURCE"
require_file "configs/trainers/$TRAINER/$CFG.yaml" "unknown CFG for TRAINER=$TRAINER"
DIR="$OUTPUT/xd/train/$SOURCE/shots_$SHOTS/$TRAINER/$CFG/seed$SEED"
run_once "$DIR" \
    --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "configs/datasets/$SOURCE.yaml" \
    --config-file "configs/trainers/$TRAINER/$CFG.yaml" \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES all "$@"
