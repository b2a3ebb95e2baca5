#!/usr/bin/env bash
# Base-to-new protocol, step 2: load the model trained on base classes and evaluate on the new ones.
#   bash scripts/base2new_test.sh <dataset> <seed> [KEY VALUE ...]
# LOADEP picks the checkpoint epoch (default: the final one). See scripts/common.sh for the rest (TRAINER, CFG, CONFIG_ROOT, LAUNCH, ...).
if [ $# -lt 2 ]; then echo "usage: bash scripts/base2new_test.sh <dataset> <seed> [KEY VALUE ...]" >&2; exit 2; fi
source "$(dirname "$0")/common.sh"
DATASET=$1; SEED=$2; shift 2
CFG="${CFG:-$(default_cfg "$DATASET" base2new)}"
RUN="$(run_name "$DATASET" "$TRAILING_SPLIT" "$@")/shots_$SHOTS/$TRAINER/$CFG/seed$SEED"
# shellcheck disable=SC2046  # load_epoch_flag prints zero or two words
run_train "$DATASET" "$SEED" "$OUTPUT/base2new/test_new/$RUN" \
    --model-dir "$OUTPUT/base2new/train_base/$RUN" $(load_epoch_flag) --eval-only \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new "$@"
