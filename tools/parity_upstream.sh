#!/usr/bin/env bash
# Our trainers against the official code's, trained on the same few-shot samples
# (docs/cpu_benchmarks.md#parity-with-upstream-coop), on a CPU benchmark, base-to-new, both sides fp32:
#   COOP=/path/to/CoOp CLIP=/path/to/mini_clip.pt bash tools/parity_upstream.sh
#   TRAINERS="KgCoOp ProGrad MaPLe PromptSRC" KGCOOP=... PROGRAD=... MAPLE=... PROMPTSRC=... CLIP=... \
#       bash tools/parity_upstream.sh
# The official code stays outside this repository and runs unmodified (run-time shims only, listed in
# tools/parity_forward_worker.py); the Dassl trees are copied, and patched, under WORK by
# python -m tools.parity_upstream setup.
# Environment:
#   TRAINERS  default "CoOp CoCoOp"; any of CoOp CoCoOp KgCoOp ProGrad MaPLe PromptSRC
#   COOP (CoOp, CoCoOp), KGCOOP, PROGRAD, MAPLE, PROMPTSRC: the official checkouts of the trainers run
#             (github.com/KaiyangZhou/CoOp, htyao89/KgCoOp, BeierZhu/Prompt-align,
#             muzairkhattak/multimodal-prompt-learning, muzairkhattak/PromptSRC)
#   CLIP      required: the benchmark's mini CLIP (python -m benchmarks.pretrain_mini_clip)
#   BENCHMARK fashion10 (default) or fashion_colours
#   DASSL     KaiyangZhou's Dassl source tree (default: the installed dassl's parent folder)
#   DASSL_PROGRAD  the Dassl.ProGrad.pytorch fork KgCoOp and ProGrad run on (default: the one in KGCOOP, else PROGRAD)
#   WORK   work folder outside the repository (default /tmp/parity); runs go to $WORK/$BENCHMARK
#   DATA   our data root (default $WORK/data)
#   SEEDS  default "1 2 3";  JOBS  parallel runs (default 2, one thread each);  SHOTS default 16
#   ORDER  random (default: each side's own shuffled training order, the published setting) or sequential
#          (DATALOADER.TRAIN_X.SAMPLER SequentialSampler on both sides: the same order, so any gap left is
#          the implementations'); runs go to $WORK/$BENCHMARK/$ORDER/{ours,upstream}
# Configs: CoOp and CoCoOp take the benchmark's mini configs; KgCoOp, ProGrad, MaPLe and PromptSRC their
# published settings on the mini CLIP (benchmarks/configs/trainers/<T>/mini_published_*.yaml); the official
# side gets the same config translated to its keys (WORK/$BENCHMARK/official_configs/).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CLIP:?set CLIP to the mini CLIP checkpoint}"
PYTHON="${PYTHON:-python}"
TRAINERS="${TRAINERS:-CoOp CoCoOp}"; BENCHMARK="${BENCHMARK:-fashion10}"
WORK=$(realpath -m "${WORK:-/tmp/parity}"); DATA=$(realpath -m "${DATA:-$WORK/data}")
SEEDS="${SEEDS:-1 2 3}"; JOBS="${JOBS:-2}"; SHOTS="${SHOTS:-16}"; ORDER="${ORDER:-random}"
case $ORDER in
    random) ORDER_OPTS=() ;;
    sequential) ORDER_OPTS=(DATALOADER.TRAIN_X.SAMPLER SequentialSampler) ;;
    *) echo "error: ORDER must be random or sequential (got $ORDER)" >&2; exit 2 ;;
esac
case $BENCHMARK in
    fashion10) DATASET=fashion_mnist ;;
    fashion_colours) DATASET=fashion_colours ;;
    *) echo "error: BENCHMARK must be fashion10 or fashion_colours (got $BENCHMARK)" >&2; exit 2 ;;
esac
code_of() {  # trainer -> its official checkout
    local var
    case $1 in
        CoOp|CoCoOp) var=COOP ;; KgCoOp) var=KGCOOP ;; ProGrad) var=PROGRAD ;; MaPLe) var=MAPLE ;;
        PromptSRC) var=PROMPTSRC ;;
        *) echo "error: TRAINERS: no official run for $1 (choose from CoOp CoCoOp KgCoOp ProGrad MaPLe PromptSRC)" >&2
           return 2 ;;
    esac
    [ -n "${!var:-}" ] || { echo "error: set $var to the official checkout for $1" >&2; return 2; }
    echo "${!var}"
}
cfg_of() {  # trainer -> the config both sides run (ours as it is, the official one translated)
    case $1 in
        CoOp) echo benchmarks/configs/trainers/CoOp/mini_c4_ep20_batch8_ctxv1.yaml ;;
        CoCoOp) echo benchmarks/configs/trainers/CoCoOp/mini_c4_ep10_batch1_ctxv1.yaml ;;
        KgCoOp) echo benchmarks/configs/trainers/KgCoOp/mini_published_c4_ep100_batch128_ctxv1.yaml ;;
        ProGrad) echo benchmarks/configs/trainers/ProGrad/mini_published_c4_ep100_batch32_ctxv1.yaml ;;
        MaPLe) echo benchmarks/configs/trainers/MaPLe/mini_published_c2_ep5_batch4_2ctx.yaml ;;
        PromptSRC) echo benchmarks/configs/trainers/PromptSRC/mini_published_c2_ep20_batch4_4+4ctx.yaml ;;
    esac
}
for trainer in $TRAINERS; do code_of "$trainer" >/dev/null || exit 2; done
DASSL="${DASSL:-$("$PYTHON" -c 'import dassl, os; print(os.path.dirname(os.path.dirname(dassl.__file__)))')}"
DASSL_PROGRAD="${DASSL_PROGRAD:-}"
for repo in "${KGCOOP:-}" "${PROGRAD:-}"; do
    if [ -z "$DASSL_PROGRAD" ] && [ -n "$repo" ]; then DASSL_PROGRAD="$repo/Dassl.ProGrad.pytorch"; fi
done
BENCH_WORK="$WORK/$BENCHMARK"
export OMP_NUM_THREADS=1 OUTDATED_IGNORE=1
mkdir -p "$BENCH_WORK/logs"
DATASET_CFG=configs/datasets/$DATASET.yaml
max_epoch() { sed -n 's/^ *MAX_EPOCH: *\([0-9]*\).*/\1/p' "$1"; }

# Our dataset code writes the benchmark's PNGs and split file on first use; upstream then reads the same files.
[ -f "$DATA/$DATASET/split_$DATASET.json" ] || "$PYTHON" -c "import datasets; from clipprompt.config import extend_cfg
from dassl.config import get_cfg_default; from dassl.data.datasets import build_dataset
cfg = get_cfg_default(); extend_cfg(cfg); cfg.merge_from_file('$DATASET_CFG'); cfg.DATASET.ROOT = '$DATA'
build_dataset(cfg)" >"$BENCH_WORK/logs/export.log" 2>&1
"$PYTHON" -m tools.parity_upstream setup --dassl "$DASSL" ${DASSL_PROGRAD:+--dassl-prograd "$DASSL_PROGRAD"} \
    --clip "$CLIP" --data "$DATA" --work "$BENCH_WORK" --benchmark "$BENCHMARK" --trainers $TRAINERS

# One (side, trainer, seed): train on base (evaluated on base), then evaluate on new.
run_pair() {
    local side=$1 trainer=$2 seed=$3 cfg ep out common
    cfg=$(cfg_of "$trainer"); ep=$(max_epoch "$cfg"); out="$BENCH_WORK/$ORDER/$side"
    local log="$BENCH_WORK/logs/${ORDER}_${side}_${trainer}_seed${seed}.log"
    [ -f "$out/done_${trainer}_${seed}" ] && return 0
    rm -rf "$out/train_base/$trainer/seed$seed" "$out/test_new/$trainer/seed$seed"
    if [ "$side" = ours ]; then
        common=("$PYTHON" train.py --root "$DATA" --seed "$seed" --trainer "$trainer" --dataset-config-file
                "$DATASET_CFG" --config-file "$cfg")
        set -- DATASET.NUM_SHOTS "$SHOTS" DATASET.FEWSHOT_SAMPLER coop MODEL.BACKBONE.PATH "$BENCH_WORK/clip.pt" \
            ${ORDER_OPTS[@]+"${ORDER_OPTS[@]}"}
    else
        common=("$PYTHON" -m tools.parity_upstream upstream --trainer "$trainer" --code "$(code_of "$trainer")"
                --work "$BENCH_WORK" -- --root "$BENCH_WORK/data_upstream/$trainer" --seed "$seed" --trainer
                "$trainer" --dataset-config-file "$BENCH_WORK/fashion_as_oxford_pets.yaml" --config-file "$cfg")
        set -- DATASET.NUM_SHOTS "$SHOTS" ${ORDER_OPTS[@]+"${ORDER_OPTS[@]}"}
    fi
    local start_run; start_run=$(date +%s)
    if "${common[@]}" --output-dir "$out/train_base/$trainer/seed$seed" "$@" DATASET.SUBSAMPLE_CLASSES base \
            >"$log" 2>&1 &&
        "${common[@]}" --output-dir "$out/test_new/$trainer/seed$seed" --eval-only --load-epoch "$ep" \
            --model-dir "$out/train_base/$trainer/seed$seed" "$@" DATASET.SUBSAMPLE_CLASSES new >>"$log" 2>&1; then
        touch "$out/done_${trainer}_${seed}"
        echo "done: $side $trainer seed $seed ($(( $(date +%s) - start_run )) s)"
    else
        echo "FAILED: $side $trainer seed $seed (see $log)" >&2; return 1
    fi
}

start=$(date +%s); failed=0
for seed in $SEEDS; do
    for trainer in $TRAINERS; do
        for side in ours upstream; do
            while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
            run_pair "$side" "$trainer" "$seed" &
        done
    done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
echo "benchmark: $BENCHMARK; training order: $ORDER"
"$PYTHON" -m tools.parity_upstream table --ours "$BENCH_WORK/$ORDER/ours" --upstream "$BENCH_WORK/$ORDER/upstream" \
    --ours-data "$DATA" --work "$BENCH_WORK" --trainers $TRAINERS --seeds $SEEDS --shots "$SHOTS"
echo "wall time: $(( $(date +%s) - start )) s (JOBS=$JOBS)"
exit $failed
