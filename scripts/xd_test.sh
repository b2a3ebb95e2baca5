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
# The trailing KEY VALUE pairs are the target's; a CustomDataset source is named by SOURCE_SPLIT_FILE
# (and SOURCE_IMAGE_DIR), the DATASET.CUSTOM.* values xd_train.sh was given.
NAME="$(run_name "$DATASET" "$TRAILING_SPLIT" "$@")"
SOURCE_NAME="$(run_name "$SOURCE" "set SOURCE_SPLIT_FILE (and SOURCE_IMAGE_DIR) to the values xd_train.sh was given" \
    ${SOURCE_SPLIT_FILE:+DATASET.CUSTOM.SPLIT_FILE "$SOURCE_SPLIT_FILE"} ${SOURCE_IMAGE_DIR:+DATASET.CUSTOM.IMAGE_DIR "$SOURCE_IMAGE_DIR"})"
# shellcheck disable=SC2046
run_train "$DATASET" "$SEED" "$OUTPUT/xd/evaluation/$TRAINER/$CFG/$NAME/seed$SEED" \
    --model-dir "$OUTPUT/xd/train/$SOURCE_NAME/shots_$SHOTS/$TRAINER/$CFG/seed$SEED" $(load_epoch_flag) --eval-only "$@"
