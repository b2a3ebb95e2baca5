#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 2: evaluate the SOURCE-trained prompt on all classes of
# another dataset (cross-dataset: caltech101, oxford_pets, ...; domain generalisation: imagenetv2,
# imagenet_sketch, imagenet_a, imagenet_r).
#   bash scripts/xd_test.sh <dataset> <seed> [KEY VALUE ...]      (LOADEP: checkpoint epoch)
if [ $# -lt 2 ]; then echo "usage: bash scripts/xd_test.sh <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
DATASET=$1; SEED=$2; shift 2
SOURCE="${SOURCE:-imagenet}"
CFG="${CFG:-$(default_cfg "$SOURCE" xd)}"
# shellcheck disable=SC2046
run_train "$DATASET" "$SEED" "$OUTPUT/xd/evaluation/$TRAINER/$CFG/$DATASET/seed$SEED" \
    --model-dir "$OUTPUT/xd/train/$SOURCE/shots_$SHOTS/$TRAINER/$CFG/seed$SEED" $(load_epoch_flag) --eval-only "$@"
