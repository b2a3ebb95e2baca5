# Shared by the protocol scripts (sourced, not run). Environment:
#   TRAINER  trainer name (default DualPromptMI)
#   CFG      config file stem under configs/trainers/$TRAINER (default: the trainer's published setting)
#   SHOTS    shots per class (default 16)
#   DATA     dataset root (default ./data)
#   OUTPUT   output root (default ./output)
#   PYTHON   python interpreter (default python)
# Extra trailing KEY VALUE pairs are passed to train.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TRAINER="${TRAINER:-DualPromptMI}"
SHOTS="${SHOTS:-16}"
DATA="${DATA:-./data}"
OUTPUT="${OUTPUT:-./output}"
PYTHON="${PYTHON:-python}"

# default_cfg <dataset> <protocol: base2new|fewshot|xd>
default_cfg() {
    case "$TRAINER:$2" in
        DualPromptMI:base2new) echo vit_b16_c4_ep10_batch4_ctxv1 ;;
        DualPromptMI:fewshot) echo vit_b16_c4_ep50_batch32_ctxv1 ;;
        DualPromptMI:xd) echo vit_b16_c4_ep5_batch4_ctxv1_xd ;;
        CoCoOp:*) echo vit_b16_c4_ep10_batch1_ctxv1 ;;
        CoOp:base2new) if [ "$1" = imagenet ]; then echo vit_b16_ep50_ctxv1; else echo vit_b16_ctxv1; fi ;;
        CoOp:*) echo vit_b16_ep50 ;;
        ZeroshotCLIP*:*) echo vit_b16 ;;
        *) echo "error: no default CFG for TRAINER=$TRAINER; set CFG" >&2; exit 2 ;;
    esac
}

require_file() {
    if [ ! -f "$1" ]; then echo "error: $1 not found ($2)" >&2; exit 2; fi
}

# run_train <dataset> <seed> <output dir> [train.py flags ...] [KEY VALUE ...]
# Runs train.py with $TRAINER and $CFG unless <output dir> already holds results.json
# (a finished run is skipped; an unfinished one makes train.py stop rather than clobber it).
run_train() {
    local dataset="$1" seed="$2" dir="$3"; shift 3
    require_file "configs/datasets/$dataset.yaml" "unknown dataset $dataset"
    require_file "configs/trainers/$TRAINER/$CFG.yaml" "unknown CFG for TRAINER=$TRAINER"
    if [ -f "$dir/results.json" ]; then
        echo "Results exist at $dir/results.json (skipping; delete the folder to rerun)"
        return 0
    fi
    "$PYTHON" train.py --root "$DATA" --seed "$seed" --trainer "$TRAINER" \
        --dataset-config-file "configs/datasets/$dataset.yaml" \
        --config-file "configs/trainers/$TRAINER/$CFG.yaml" \
        --output-dir "$dir" "$@"
}

# load_epoch_flag: --load-epoch $LOADEP when LOADEP is set
load_epoch_flag() {
    if [ -n "${LOADEP:-}" ]; then echo "--load-epoch $LOADEP"; fi
}
