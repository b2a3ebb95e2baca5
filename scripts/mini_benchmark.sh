#!/usr/bin/env bash
# The CPU base-to-new benchmarks on real images, in one command:
#   bash scripts/mini_benchmark.sh                              # FashionMNIST, 5 base + 5 new classes
#   BENCHMARK=fashion_colours bash scripts/mini_benchmark.sh    # 30 base + 30 new classes ("red sneaker")
# 1. takes the benchmark's shipped mini CLIP (benchmarks/checkpoints/, sha256-pinned by
#    benchmarks/mini_clip/shipped.py), or pretrains one (REBUILD=1; benchmarks/pretrain_mini_clip.py),
# 2. runs the base-to-new protocol with the same scripts users run, for ZeroshotCLIP, CoOp, CoCoOp,
#    KgCoOp, ProGrad, MaPLe, PromptSRC and DualPromptMI, over SEEDS, with the configs of
#    benchmarks/configs/trainers: by default every trainer at its published setting (mini_published_*.yaml),
# 3. prints the aggregated Base/New/HM table (also written as CSV and Markdown), the ordering checks
#    (benchmarks/ordering.py), DualPromptMI's targets (benchmarks/targets.py) and writes the base-vs-new plot (PNG).
# Environment:
#   BENCHMARK  fashion10 (default) or fashion_colours
#   SCHEDULE   published (default: each trainer's published LR, epochs, batch, tokens and weights, scaled
#              only where the mini CLIP forces it) or mini (the quick mode: 10x LR, batch 8, 20 epochs, and
#              DualPromptMI over CoOp, IVLP and MaPLe prompts plus "CoOp + ensemble")
#   DATA       root holding the FashionMNIST IDX files (else Debian's /usr/share/datasets/fashion-mnist
#              is used; `apt-get install dataset-fashion-mnist`); the downstream PNGs are written under it
#   OUTPUT     output root (default ./output/mini for fashion10, ./output/fashion_colours; SCHEDULE=mini
#              appends _quick)
#   SEEDS      non-negative integers (default "1 2 3");  SHOTS default 16;
#   JOBS       parallel runs, a positive integer (default 2, one thread each)
#   CLIP_CKPT  a mini CLIP checkpoint of your own (made there if missing); default: the shipped one
#   REBUILD=1  pretrain the mini CLIP with the benchmark's recipe into $OUTPUT/mini_clip/mini_clip.pt
#              instead of using the shipped one (another CPU gives other weights: docs/mini_clip.md)
#   TRAINERS   only these trainers, e.g. "ZeroshotCLIP CoOp" (default: all of the schedule's runs)
# BENCHMARK, SCHEDULE, SEEDS, JOBS and TRAINERS are checked before anything runs (one error line, exit 2).
#   QUICK=1    tiny model, one epoch, for the test suite (minutes -> seconds); implies REBUILD=1
BENCHMARK="${BENCHMARK:-fashion10}"
case "$BENCHMARK" in
    fashion10) DATASET=fashion_mnist; DEFAULT_OUTPUT=./output/mini ;;
    fashion_colours) DATASET=fashion_colours; DEFAULT_OUTPUT=./output/fashion_colours ;;
    *) hint=""
       case "${BENCHMARK,,}" in fashion10|fashion_colours) hint=" (did you mean ${BENCHMARK,,}?)" ;; esac
       echo "error: BENCHMARK=$BENCHMARK: choose fashion10 or fashion_colours$hint" >&2; exit 2 ;;
esac
SCHEDULE="${SCHEDULE:-published}"
case "$SCHEDULE" in
    published) ;;
    mini) DEFAULT_OUTPUT="${DEFAULT_OUTPUT}_quick" ;;
    *) echo "error: SCHEDULE=$SCHEDULE: choose published (the default) or mini (the quick mode)" >&2; exit 2 ;;
esac
OUTPUT="${OUTPUT:-$DEFAULT_OUTPUT}"
CONFIG_ROOT="${CONFIG_ROOT:-benchmarks/configs/trainers}"
TRAINER=CoOp  # common.sh checks a trainer folder exists; each run sets its own
source "$(dirname "$0")/common.sh"  # DATA, SHOTS, PYTHON defaults; strict mode; repository root
SEEDS="${SEEDS-1 2 3}"  # only unset means the default: SEEDS="" (an empty variable) is a mistake
JOBS="${JOBS-2}"
REBUILD="${REBUILD:-0}"
if [ "${QUICK:-0}" = 1 ]; then REBUILD=1; fi  # the shipped checkpoints are full-size
case "$REBUILD" in 0|1) ;; *) echo "error: REBUILD=$REBUILD: give 1 (pretrain) or 0 (the shipped mini CLIP)" >&2; exit 2 ;; esac

# the first run (alone) exports the images; then the longest (CoCoOp), so that the parallel runs end together
PUBLISHED_RUNS=(
    "ZeroshotCLIP mini"
    "CoCoOp mini_published_c4_ep10_batch1_ctxv1"
    "CoOp mini_published_ep200_batch32_ctxv1"
    "KgCoOp mini_published_c4_ep100_batch128_ctxv1"
    "ProGrad mini_published_c4_ep100_batch32_ctxv1"
    "MaPLe mini_published_c2_ep5_batch4_2ctx"
    "PromptSRC mini_published_c2_ep20_batch4_4+4ctx"
    "DualPromptMI mini_published_c4_ep10_batch4_ctxv1"
    "DualPromptMI mini_published_c2_ep20_batch4_4+4ctx_promptsrc"
)
METHOD_RUN="DualPromptMI mini_published_c4_ep10_batch4_ctxv1"  # the method benchmarks.targets judges
QUICK_RUNS=(
    "ZeroshotCLIP mini"
    "CoCoOp mini_c4_ep10_batch1_ctxv1"
    "CoOp mini_c4_ep20_batch8_ctxv1"
    "KgCoOp mini_c4_ep20_batch8_ctxv1"
    "PromptSRC mini_c4_ep20_batch8_4+4ctx"
    "MaPLe mini_c2_ep20_batch8_2ctx"
    "ProGrad mini_c4_ep20_batch8_ctxv1"
    "DualPromptMI mini_c4_ep20_batch8_ctxv1_ensemble_only"
    "DualPromptMI mini_c4_ep20_batch8_ctxv1"
    "DualPromptMI mini_c4_ep20_batch8_ctxv1_ivlp"
    "DualPromptMI mini_c4_ep20_batch8_ctxv1_maple"
)
if [ "$SCHEDULE" = mini ]; then
    RUNS=("${QUICK_RUNS[@]}"); METHOD_RUN="DualPromptMI mini_c4_ep20_batch8_ctxv1"
else
    RUNS=("${PUBLISHED_RUNS[@]}")
fi

# Every setting is checked here, before the minutes of pretraining, so that a typo costs seconds.
read -r -a seed_list <<<"$SEEDS"
if [ ${#seed_list[@]} = 0 ]; then
    echo "error: SEEDS is empty: give seeds such as SEEDS=\"1 2 3\", or unset it for the default" >&2; exit 2
fi
for seed in "${seed_list[@]}"; do
    if ! [[ "$seed" =~ ^[0-9]+$ ]]; then
        echo "error: SEEDS=\"$SEEDS\": $seed is not a non-negative integer; write e.g. SEEDS=\"1 2 3\"" >&2; exit 2
    fi
done
if ! [[ "$JOBS" =~ ^[0-9]+$ ]] || [ "$((10#$JOBS))" = 0 ]; then
    echo "error: JOBS=$JOBS: give a positive integer (runs at a time), e.g. JOBS=2" >&2; exit 2
fi
known=()
for spec in "${RUNS[@]}"; do [[ " ${known[*]} " == *" ${spec%% *} "* ]] || known+=("${spec%% *}"); done
read -r -a wanted <<<"${TRAINERS:-}"
for name in "${wanted[@]}"; do
    [[ " ${known[*]} " == *" $name "* ]] && continue
    hint=""
    for trainer in "${known[@]}"; do [ "${trainer,,}" = "${name,,}" ] && hint=" (did you mean $trainer?)"; done
    echo "error: TRAINERS: unknown trainer $name$hint; choose among: ${known[*]}" >&2; exit 2
done
if [ ${#wanted[@]} -gt 0 ]; then
    chosen=()
    for spec in "${RUNS[@]}"; do
        for name in "${wanted[@]}"; do [ "${spec%% *}" = "$name" ] && chosen+=("$spec"); done
    done
    RUNS=("${chosen[@]}")
fi

export OMP_NUM_THREADS=1 DATA OUTPUT SHOTS PYTHON CONFIG_ROOT
start=$(date +%s)

QUICK_FLAG=()
if [ "${QUICK:-0}" = 1 ]; then QUICK_FLAG=(--quick); fi
if [ -z "${CLIP_CKPT:-}" ] && [ "$REBUILD" = 0 ]; then
    # the shipped checkpoint, after its sha256 check (one error line if the file is not the pinned one)
    CLIP_CKPT=$("$PYTHON" -m benchmarks.mini_clip.shipped "$BENCHMARK") || exit 2
fi
CLIP_CKPT="${CLIP_CKPT:-$OUTPUT/mini_clip/mini_clip.pt}"
if [ -f "$CLIP_CKPT" ]; then
    # a checkpoint of another recipe (another benchmark's, a QUICK one) is refused, not reused
    "$PYTHON" -m benchmarks.pretrain_mini_clip --benchmark "$BENCHMARK" --out "$CLIP_CKPT" --check-existing \
        "${QUICK_FLAG[@]}" || exit 2
    echo "Reusing the mini CLIP at $CLIP_CKPT"
else
    OMP_NUM_THREADS=$JOBS "$PYTHON" -m benchmarks.pretrain_mini_clip --benchmark "$BENCHMARK" --out "$CLIP_CKPT" \
        --data-root "$DATA" --threads "$JOBS" "${QUICK_FLAG[@]}"  # a progress line with an ETA every 10%
fi
pretrained=$(date +%s)
CLIP_SHA=$("$PYTHON" -c 'import sys; from benchmarks.mini_clip.shipped import sha256_of; print(sha256_of(sys.argv[1])[:12])' "$CLIP_CKPT")
# Finished runs are skipped by name: runs made on other weights must not mix into this table.
if [ -f "$OUTPUT/mini_clip_checkpoint.txt" ] && [ "$(cut -d' ' -f1 "$OUTPUT/mini_clip_checkpoint.txt")" != "$CLIP_SHA" ]; then
    echo "error: OUTPUT=$OUTPUT holds runs made on the mini CLIP $(cat "$OUTPUT/mini_clip_checkpoint.txt") (sha256 prefix, path), not on $CLIP_CKPT ($CLIP_SHA); choose another OUTPUT" >&2
    exit 2
fi
mkdir -p "$OUTPUT"
echo "$CLIP_SHA $CLIP_CKPT" >"$OUTPUT/mini_clip_checkpoint.txt"  # which weights the table below ran on

EXTRA=(MODEL.BACKBONE.PATH "$CLIP_CKPT")
if [ "${QUICK:-0}" = 1 ]; then
    # the QUICK CLIP has one block per tower: deep prompts at depth 1 (the mini configs ask for 2-3)
    EXTRA+=(OPTIM.MAX_EPOCH 1 TRAINER.MAPLE.PROMPT_DEPTH 1 TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT 1
            TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION 1 TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH 1
            TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH 1)
fi

# The runs go through tools/grid.py (JOBS at a time, finished runs skipped, one log per run under
# $OUTPUT/grid_logs); the first (ZeroshotCLIP) runs alone because it exports the downstream images.
# The grid ends with the Base/New/HM table (parse_test_res.py, also written as CSV and Markdown).
trainers=(); cfgs=()
for spec in "${RUNS[@]}"; do
    read -r trainer cfg <<<"$spec"
    [[ " ${trainers[*]} " == *" $trainer "* ]] || trainers+=("$trainer")
    cfgs+=("$trainer=$cfg")
done
# shellcheck disable=SC2086  # SEEDS is a list
"$PYTHON" -m tools.grid base2new --trainers "${trainers[@]}" --cfg "${cfgs[@]}" --datasets "$DATASET" \
    --seeds $SEEDS --shots "$SHOTS" --data "$DATA" --output "$OUTPUT" --config-root "$CONFIG_ROOT" \
    --jobs "$JOBS" --first-alone --opts "${EXTRA[@]}"

if [[ " ${RUNS[*]} " == *" DualPromptMI "* ]]; then
    echo "DualPromptMI's soft view alone (inference weight 1):"
    "$PYTHON" parse_test_res.py "$OUTPUT/base2new" --metric variants.soft_only.accuracy --no-save 2>/dev/null |
        grep -E "Trainer|DualPromptMI" || true
fi
"$PYTHON" -m benchmarks.ordering "$OUTPUT/base2new" || true  # a failed check is reported, not fatal
if [[ " ${RUNS[*]} " == *" $METHOD_RUN "* ]]; then  # DualPromptMI against each baseline, per-seed views
    "$PYTHON" -m benchmarks.targets "$OUTPUT/base2new" --method "${METHOD_RUN/ /=}" || true
fi
echo "mini CLIP: $CLIP_CKPT, sha256 $CLIP_SHA (SCHEDULE=$SCHEDULE)"
"$PYTHON" -m tools.plot_base_new "$OUTPUT/base2new" --out "$OUTPUT/base_new.png"
end=$(date +%s)
echo "wall time: pretraining $((pretrained - start)) s, protocol $((end - pretrained)) s, total $((end - start)) s (JOBS=$JOBS)"
