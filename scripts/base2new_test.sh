#!/usr/bin/env bash
# Base-to-new protocol, step 2: load the model trained on base classes and evaluate on the new ones.
#   bash scripts/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# LOADEP picks the checkpoint epoch (default: the final one). See scripts/common.sh for the rest.
if [ $# -lt 2 ]; then echo "usage: bash scripts/base2new_test.sh <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
DATASET=$1; SEED=$2; shift 2
CFG="${CFG:-$(default_cfg "$DATASET" base2new)}"
require_file "configs/datasets/$DATASET.yaml" "unknown dataset $DATASET"
require_file "configs/trainers/$TRAINER/$CFG.yaml" "unknown CFG for TRAINER=$TRAINER"
COMMON="$DATASET/shots_$SHOTS/$TRAINER/$CFG/seed$SEED"
MODEL_DIR="$OUTPUT/base2new/train_base/$COMMON"
DIR="$OUTPUT/base2new/test_new/$COMMON"
EPOCH_ARGS=()
if [ -n "${LOADEP:-}" ]; then EPOCH_ARGS=(--load-epoch "$LOADEP"); fi
run_once "$DIR" \
    --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "configs/datasets/$DATASET.yaml" \
    --config-file "configs/trainers/$TRAINER/$CFG.yaml" \
    --model-dir "$MODEL_DIR" "${EPOCH_ARGS[@]}" --eval-only \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new "$@"
