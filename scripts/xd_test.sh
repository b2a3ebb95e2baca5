#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 2: evaluate the ImageNet-trained prompt on another dataset
# (cross-dataset: caltech101, oxford_pets, ...; domain generalisation: imagenetv2, imagenet_sketch,
# imagenet_a, imagenet_r). All classes of the target are used.
#   bash scripts/xd_test.sh <dataset> <seed> [KEY VALUE ...]      (LOADEP: checkpoint epoch)
if [ $# -lt 2 ]; then echo "usage: bash scripts/xd_test.sh <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
DATASET=$1; SEED=$2; shift 2
SOURCE="${SOURCE:-imagenet}"
CFG="${CFG:-$(default_cfg "$SOURCE" xd)}"
require_file "configs/datasets/$DATASET.yaml" "unknown dataset $DATASET"
require_file "configs/trainers/$TRAINER/$CFG.yaml" "unknown CFG for TRAINER=$TRAINER"
MODEL_DIR="$OUTPUT/xd/train/$SOURCE/shots_$SHOTS/$TRAINER/$CFG/seed$SEED"
DIR="$OUTPUT/xd/evaluation/$TRAINER/$CFG/$DATASET/seed$SEED"
EPOCH_ARGS=()
if [ -n "${LOADEP:-}" ]; then EPOCH_ARGS=(--load-epoch "$LOADEP"); fi
run_once "$DIR" \
    --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "configs/datasets/$DATASET.yaml" \
    --config-file "configs/trainers/$TRAINER/$CFG.yaml" \
    --model-dir "$MODEL_DIR" "${EPOCH_ARGS[@]}" --eval-only "$@"
