#!/usr/bin/env bash
# Our CoOp and CoCoOp against upstream CoOp's trainers on the same few-shot samples
# (docs/cpu_benchmarks.md#parity-with-upstream-coop), on the 10-class FashionMNIST benchmark,
# base-to-new, both sides fp32:
#   COOP=/path/to/CoOp CLIP=/path/to/mini_clip.pt bash tools/parity_upstream.sh
# Upstream code stays outside this repository: COOP is a checkout of github.com/KaiyangZhou/CoOp, DASSL a
# Dassl source tree (both copied, and patched, under WORK by python -m tools.parity_upstream setup).
# Environment:
#   COOP, CLIP  required;  DASSL  Dassl source tree (default: the installed dassl's parent folder)
#   WORK   work folder outside the repository (default /tmp/parity); DATA our data root (default $WORK/data)
#   SEEDS  default "1 2 3";  JOBS  parallel runs (default 2, one thread each);  SHOTS default 16
#   ORDER  random (default: each side's own shuffled training order, the published setting) or sequential
#          (DATALOADER.TRAIN_X.SAMPLER SequentialSampler on both sides: the same order, so any gap left is
#          the implementations'); runs go to $WORK/$ORDER/{ours,upstream}
set -euo pipefail
cd "$(dirname "$0")/.."
: "${COOP:?set COOP to an upstream CoOp checkout}" "${CLIP:?set CLIP to the mini CLIP checkpoint}"
PYTHON="${PYTHON:-python}"
DASSL="${DASSL:-$("$PYTHON" -c 'import dassl, os; print(os.path.dirname(os.path.dirname(dassl.__file__)))')}"
WORK="${WORK:-/tmp/parity}"; DATA="${DATA:-$WORK/data}"
SEEDS="${SEEDS:-1 2 3}"; JOBS="${JOBS:-2}"; SHOTS="${SHOTS:-16}"; ORDER="${ORDER:-random}"
case $ORDER in
    random) ORDER_OPTS=() ;;
    sequential) ORDER_OPTS=(DATALOADER.TRAIN_X.SAMPLER SequentialSampler) ;;
    *) echo "error: ORDER must be random or sequential (got $ORDER)" >&2; exit 2 ;;
esac
export OMP_NUM_THREADS=1 OUTDATED_IGNORE=1
mkdir -p "$WORK/logs"
first() { for f in "$@"; do [ -f "$f" ] && { echo "$f"; return; }; done; echo "error: none of $* exists" >&2; exit 2; }
DATASET_CFG=$(first benchmarks/configs/datasets/fashion_mnist.yaml configs/datasets/fashion_mnist.yaml)
cfg_of() {  # trainer -> its mini config (the CPU benchmark's)
    case $1 in
        CoOp) first {benchmarks/,}configs/trainers/CoOp/mini_c4_ep20_batch8_ctxv1.yaml ;;
        CoCoOp) first {benchmarks/,}configs/trainers/CoCoOp/mini_c4_ep10_batch1_ctxv1.yaml ;;
    esac
}
max_epoch() { sed -n 's/^ *MAX_EPOCH: *\([0-9]*\).*/\1/p' "$1"; }

# Our dataset code writes the benchmark's PNGs and split file on first use; upstream then reads the same files.
if [ ! -f "$DATA/fashion_mnist/split_fashion_mnist.json" ]; then
    "$PYTHON" -c "import datasets; from clipprompt.config import extend_cfg
from dassl.config import get_cfg_default; from dassl.data.datasets import build_dataset
cfg = get_cfg_default(); extend_cfg(cfg); cfg.merge_from_file('$DATASET_CFG'); cfg.DATASET.ROOT = '$DATA'
build_dataset(cfg)" >"$WORK/logs/export.log" 2>&1
fi
"$PYTHON" -m tools.parity_upstream setup --coop "$COOP" --dassl "$DASSL" --clip "$CLIP" --data "$DATA" --work "$WORK"

# One (side, trainer, seed): train on base (evaluated on base), then evaluate on new.
run_pair() {
    local side=$1 trainer=$2 seed=$3 cfg ep out common
    cfg=$(cfg_of "$trainer"); ep=$(max_epoch "$cfg"); out="$WORK/$ORDER/$side"
    local log="$WORK/logs/${ORDER}_${side}_${trainer}_seed${seed}.log"
    [ -f "$out/done_${trainer}_${seed}" ] && return 0
    rm -rf "$out/train_base/$trainer/seed$seed" "$out/test_new/$trainer/seed$seed"
    if [ "$side" = ours ]; then
        common=("$PYTHON" train.py --root "$DATA" --seed "$seed" --trainer "$trainer" --dataset-config-file
                "$DATASET_CFG" --config-file "$cfg")
        set -- DATASET.NUM_SHOTS "$SHOTS" DATASET.FEWSHOT_SAMPLER coop MODEL.BACKBONE.PATH "$WORK/clip.pt" \
            ${ORDER_OPTS[@]+"${ORDER_OPTS[@]}"}
    else
        common=("$PYTHON" -m tools.parity_upstream upstream --coop "$COOP" --work "$WORK" -- --root
                "$WORK/data_upstream" --seed "$seed" --trainer "$trainer" --dataset-config-file
                "$WORK/fashion_as_oxford_pets.yaml" --config-file "$cfg")
        set -- DATASET.NUM_SHOTS "$SHOTS" ${ORDER_OPTS[@]+"${ORDER_OPTS[@]}"}
    fi
    if "${common[@]}" --output-dir "$out/train_base/$trainer/seed$seed" "$@" DATASET.SUBSAMPLE_CLASSES base \
            >"$log" 2>&1 &&
        "${common[@]}" --output-dir "$out/test_new/$trainer/seed$seed" --eval-only --load-epoch "$ep" \
            --model-dir "$out/train_base/$trainer/seed$seed" "$@" DATASET.SUBSAMPLE_CLASSES new >>"$log" 2>&1; then
        touch "$out/done_${trainer}_${seed}"; echo "done: $side $trainer seed $seed"
    else
        echo "FAILED: $side $trainer seed $seed (see $log)" >&2; return 1
    fi
}

start=$(date +%s); failed=0
for seed in $SEEDS; do
    for trainer in CoOp CoCoOp; do
        for side in ours upstream; do
            while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
            run_pair "$side" "$trainer" "$seed" &
        done
    done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
echo "training order: $ORDER"
"$PYTHON" -m tools.parity_upstream table --ours "$WORK/$ORDER/ours" --upstream "$WORK/$ORDER/upstream" --ours-data "$DATA" \
    --work "$WORK" --seeds $SEEDS --shots "$SHOTS"
echo "wall time: $(( $(date +%s) - start )) s (JOBS=$JOBS)"
exit $failed
