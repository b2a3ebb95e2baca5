#!/usr/bin/env bash
# Base-to-new protocol, step 1: train on the base classes and evaluate on them.
#   bash scripts/base2new_train.sh <dataset> <seed> [KEY VALUE ...]
# See scripts/common.sh for TRAINER, CFG, CONFIG_ROOT, SHOTS, DATA, OUTPUT, LAUNCH (e.g. torchrun), RESUME.
if [ $# -lt 2 ]; then echo "usage: bash scripts/base2new_train.sh <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
DATASET=$1; SEED=$2; shift 2
CFG="${CFG:-$(default_cfg "$DATASET" base2new)}"
NAME="$(run_name "$DATASET" "$TRAILING_SPLIT" "$@")"
run_train "$DATASET" "$SEED" "$OUTPUT/base2new/train_base/$NAME/shots_$SHOTS/$TRAINER/$CFG/seed$SEED" \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base "$@"
