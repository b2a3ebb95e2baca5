#!/usr/bin/env bash
# The CPU base-to-new benchmark on real images, in one command:
#   bash scripts/mini_benchmark.sh
# 1. pretrains a mini CLIP on FashionMNIST's official train split (or reuses the checkpoint),
# 2. runs the base-to-new protocol with the same scripts users run, for ZeroshotCLIP, CoOp, CoCoOp,
#    "CoOp + the hand-crafted inference ensemble" (DualPromptMI, MI and augmentation off) and
#    DualPromptMI, over SEEDS,
# 3. prints the aggregated Base/New/HM table and writes it (CSV, Markdown) and a plot (PNG).
# Environment:
#   DATA       root holding the FashionMNIST IDX files (else Debian's /usr/share/datasets/fashion-mnist
#              is used; `apt-get install dataset-fashion-mnist`); the downstream PNGs are written under it
#   OUTPUT     output root (default ./output/mini)
#   SEEDS      default "1 2 3";  SHOTS default 16;  JOBS parallel runs (default 2, one thread each)
#   CLIP_CKPT  mini CLIP checkpoint (default $OUTPUT/mini_clip/mini_clip.pt; made if missing)
#   QUICK=1    tiny model, one epoch, for the test suite (minutes -> seconds)
OUTPUT="${OUTPUT:-./output/mini}"
source "$(dirname "$0")/common.sh"  # DATA, SHOTS, PYTHON defaults; strict mode; repository root
SEEDS="${SEEDS:-1 2 3}"
JOBS="${JOBS:-2}"
CLIP_CKPT="${CLIP_CKPT:-$OUTPUT/mini_clip/mini_clip.pt}"
export OMP_NUM_THREADS=1 DATA OUTPUT SHOTS PYTHON
start=$(date +%s)
mkdir -p "$OUTPUT/logs"

if [ -f "$CLIP_CKPT" ]; then
    echo "Reusing the mini CLIP at $CLIP_CKPT"
else
    QUICK_FLAG=()
    if [ "${QUICK:-0}" = 1 ]; then QUICK_FLAG=(--quick); fi
    OMP_NUM_THREADS=$JOBS "$PYTHON" tools/pretrain_mini_clip.py --out "$CLIP_CKPT" --data-root "$DATA" \
        --threads "$JOBS" "${QUICK_FLAG[@]}"
fi
pretrained=$(date +%s)

EXTRA=(MODEL.BACKBONE.PATH "$CLIP_CKPT")
if [ "${QUICK:-0}" = 1 ]; then EXTRA+=(OPTIM.MAX_EPOCH 1); fi

RUNS=(
    "ZeroshotCLIP mini"
    "CoOp mini_c4_ep20_batch8_ctxv1"
    "CoCoOp mini_c4_ep10_batch1_ctxv1"
    "DualPromptMI mini_c4_ep20_batch8_ctxv1_ensemble_only"
    "DualPromptMI mini_c4_ep20_batch8_ctxv1"
)

# One (trainer, seed): train on base, test on new; its log goes to $OUTPUT/logs.
run_pair() {
    local trainer=$1 cfg=$2 seed=$3 log="$OUTPUT/logs/${1}_${2}_seed${3}.log"
    if TRAINER=$trainer CFG=$cfg bash scripts/base2new_train.sh fashion_mnist "$seed" "${EXTRA[@]}" >"$log" 2>&1 &&
        TRAINER=$trainer CFG=$cfg bash scripts/base2new_test.sh fashion_mnist "$seed" "${EXTRA[@]}" >>"$log" 2>&1; then
        echo "done: $trainer $cfg seed $seed"
    else
        echo "FAILED: $trainer $cfg seed $seed (see $log)" >&2
        return 1
    fi
}

# The first run exports the downstream images; the rest run JOBS at a time.
first_seed=${SEEDS%% *}
run_pair ZeroshotCLIP mini "$first_seed"
failed=0
for spec in "${RUNS[@]}"; do
    for seed in $SEEDS; do
        [ "$spec $seed" = "ZeroshotCLIP mini $first_seed" ] && continue
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
        run_pair $spec "$seed" &
    done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
if [ "$failed" != 0 ]; then echo "error: some runs failed (logs in $OUTPUT/logs)" >&2; exit 1; fi

"$PYTHON" parse_test_res.py "$OUTPUT/base2new"
echo "DualPromptMI's soft view alone (inference weight 1):"
"$PYTHON" parse_test_res.py "$OUTPUT/base2new" --metric variants.soft_only.accuracy --no-save 2>/dev/null | grep -E "Trainer|DualPromptMI"
"$PYTHON" tools/plot_base_new.py "$OUTPUT/base2new" --out "$OUTPUT/base_new.png"
end=$(date +%s)
echo "wall time: pretraining $((pretrained - start)) s, protocol $((end - pretrained)) s, total $((end - start)) s (JOBS=$JOBS)"
