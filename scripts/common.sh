# Shared by the protocol scripts (sourced, not run). Environment:
#   TRAINER  trainer name (default DualPromptMI)
#   CFG      config file stem: the config is $CONFIG_ROOT/$TRAINER/$CFG.yaml (default: the trainer's published setting)
#   CONFIG_ROOT  folder of the trainer configs (default configs/trainers)
#   SHOTS    shots per class (default 16)
#   DATA     dataset root (default ./data)
#   OUTPUT   output root (default ./output)
#   PYTHON   python interpreter (default python)
#   LAUNCH   what starts train.py (default $PYTHON), e.g. "torchrun --standalone --nproc_per_node 4":
#            one run on 4 GPUs, DATALOADER.TRAIN_X.BATCH_SIZE per process
#   RESUME   1: continue an unfinished run folder (from its last checkpoint; without one, afresh with
#            the old folder moved aside to <folder>.old-<time>); unset: train.py stops and says so
#   RUN_DIR_ONLY  1: print the run folder and exit (tools/gridlib.py uses it: one home for the layout)
#   SOURCE_SPLIT_FILE, SOURCE_IMAGE_DIR  xd_test.sh with a CustomDataset SOURCE: the DATASET.CUSTOM.*
#            values xd_train.sh was given (they name its run folder)
# Extra trailing KEY VALUE pairs are passed to train.py. A CustomDataset's run folder (e.g. custom) is
# named after its DATASET.CUSTOM.SPLIT_FILE among them (see run_name), so split files never share one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TRAINER="${TRAINER:-DualPromptMI}"
SHOTS="${SHOTS:-16}"
DATA="${DATA:-./data}"
OUTPUT="${OUTPUT:-./output}"
PYTHON="${PYTHON:-python}"
CONFIG_ROOT="${CONFIG_ROOT:-configs/trainers}"
LAUNCH="${LAUNCH:-}"

# names of the sub-folders of $1 (or of the .yaml files in it with $2 = yaml), space-separated
list_names() {
    local names=() path
    if [ "${2:-}" = yaml ]; then
        for path in "$1"/*.yaml; do [ -f "$path" ] && names+=("$(basename "$path" .yaml)"); done
    else
        for path in "$1"/*/; do [ -d "$path" ] && names+=("$(basename "$path")"); done
    fi
    echo "${names[*]:-none}"
}
if [ ! -d "$CONFIG_ROOT/$TRAINER" ]; then
    echo "error: unknown TRAINER=$TRAINER; known trainers: $(list_names "$CONFIG_ROOT") (the folders of CONFIG_ROOT=$CONFIG_ROOT)" >&2
    exit 2
fi

# default_cfg <dataset> <protocol: base2new|fewshot|xd>
default_cfg() {
    case "$TRAINER:$2" in
        DualPromptMI:base2new) echo vit_b16_c4_ep10_batch4_ctxv1 ;;
        DualPromptMI:fewshot) echo vit_b16_c4_ep50_batch32_ctxv1 ;;
        DualPromptMI:xd) echo vit_b16_c4_ep5_batch4_ctxv1_xd ;;
        CoCoOp:*) echo vit_b16_c4_ep10_batch1_ctxv1 ;;
        MaPLe:xd) echo vit_b16_c2_ep2_batch4_2ctx_xd ;;
        MaPLe:*) echo vit_b16_c2_ep5_batch4_2ctx ;;
        PromptSRC:fewshot) echo vit_b16_c2_ep50_batch4_4+4ctx_fewshot ;;
        PromptSRC:xd) echo vit_b16_c2_ep20_batch4_4+4ctx_xd ;;
        PromptSRC:*) echo vit_b16_c2_ep20_batch4_4+4ctx ;;
        KgCoOp:*) echo vit_b16_c4_ep100_batch128_ctxv1 ;;  # KgCoOp's only ViT-B/16 config (its base2new and xd scripts)
        ProGrad:*) echo vit_b16_c4_ep100_batch32_ctxv1 ;;
        CoOp:base2new) if [ "$1" = imagenet ]; then echo vit_b16_ep50_ctxv1; else echo vit_b16_ctxv1; fi ;;
        CoOp:*) echo vit_b16_ep50 ;;
        ZeroshotCLIP*:*) echo vit_b16 ;;
        *) echo "error: no default CFG for TRAINER=$TRAINER; set CFG to one of: $(list_names "$CONFIG_ROOT/$TRAINER" yaml)" >&2; exit 2 ;;
    esac
}

TRAILING_SPLIT="pass DATASET.CUSTOM.SPLIT_FILE <file> among the trailing KEY VALUE pairs"
# run_name <dataset> <how to pass the split> [KEY VALUE ...]: the dataset's part of a run folder.
# A CustomDataset reads its images from DATASET.CUSTOM.SPLIT_FILE (and IMAGE_DIR), so its config
# stem ("custom") alone would name every split file's runs alike, and a finished run of one split
# file would be taken for another's: the folder is <dataset>_<split file stem>_<checksum of the
# split file and image folder paths, resolved against DATA as train.py does>.
run_name() {
    local dataset="$1" hint="$2" split="" images="" key
    shift 2
    while [ $# -ge 2 ]; do
        case "$1" in
            DATASET.CUSTOM.SPLIT_FILE) split="$2"; shift 2 ;;
            DATASET.CUSTOM.IMAGE_DIR) images="$2"; shift 2 ;;
            *) shift ;;
        esac
    done
    if [ -z "$split" ]; then
        if grep -Eq '^[[:space:]]*NAME:[[:space:]]*"?CustomDataset"?' "configs/datasets/$dataset.yaml" 2>/dev/null &&
            ! grep -Eq '^[[:space:]]*SPLIT_FILE:' "configs/datasets/$dataset.yaml"; then
            echo "error: dataset $dataset reads its split file from DATASET.CUSTOM.SPLIT_FILE: $hint (its run folder is named after it)" >&2
            exit 2
        fi
        echo "$dataset"
        return 0
    fi
    key="$(printf '%s\n%s' "$(resolved_path "$split")" "$(resolved_path "$images")" | cksum | cut -d' ' -f1)"
    printf '%s_%s_%08x\n' "$dataset" "$(basename "${split%.*}")" "$key"
}
# resolved_path <path>: absolute, relative paths taken from DATA (train.py's --root); empty stays empty
resolved_path() {
    local path="$1" dir
    if [ -z "$path" ]; then return 0; fi
    if [[ "$path" != /* ]]; then path="$DATA/$path"; fi
    dir="$(cd "$(dirname "$path")" 2>/dev/null && pwd -P)" || dir="$(dirname "$path")"
    echo "$dir/$(basename "$path")"
}

require_file() {
    if [ ! -f "$1" ]; then echo "error: $1 not found ($2)" >&2; exit 2; fi
}

# run_train <dataset> <seed> <output dir> [train.py flags ...] [KEY VALUE ...]
# Runs train.py with $TRAINER and $CFG unless <output dir> already holds results.json
# (a finished run is skipped; an unfinished one makes train.py stop rather than clobber it, or is
# continued with RESUME=1).
run_train() {
    local dataset="$1" seed="$2" dir="$3"; shift 3
    require_file "configs/datasets/$dataset.yaml" "unknown dataset $dataset; known: $(list_names configs/datasets yaml)"
    require_file "$CONFIG_ROOT/$TRAINER/$CFG.yaml" "unknown CFG=$CFG for TRAINER=$TRAINER; known: $(list_names "$CONFIG_ROOT/$TRAINER" yaml)"
    if [ "${RUN_DIR_ONLY:-0}" = 1 ]; then echo "$dir"; return 0; fi
    if [ -f "$dir/results.json" ]; then
        echo "Results exist at $dir/results.json (skipping; delete the folder to rerun)"
        return 0
    fi
    local launch=() continue_flags=()
    if [ -n "$LAUNCH" ]; then read -r -a launch <<< "$LAUNCH"; else launch=("$PYTHON"); fi
    if ! command -v "${launch[0]}" >/dev/null 2>&1; then
        echo "error: ${launch[0]} not found (LAUNCH=${LAUNCH:-} PYTHON=$PYTHON)" >&2
        exit 2
    fi
    if [ "${RESUME:-0}" = 1 ] && [ -d "$dir" ]; then
        if [[ " $* " != *" --eval-only "* ]] && compgen -G "$dir/prompt_learner/model.pth.tar-*" >/dev/null; then
            continue_flags=(--resume "$dir")
        else
            continue_flags=(--overwrite)  # nothing to continue from; train.py keeps the old folder aside
        fi
    fi
    "${launch[@]}" train.py --root "$DATA" --seed "$seed" --trainer "$TRAINER" \
        --dataset-config-file "configs/datasets/$dataset.yaml" \
        --config-file "$CONFIG_ROOT/$TRAINER/$CFG.yaml" \
        --output-dir "$dir" "${continue_flags[@]}" "$@"
}
# load_epoch_flag: --load-epoch $LOADEP when LOADEP is set
load_epoch_flag() {
    if [ -n "${LOADEP:-}" ]; then echo "--load-epoch $LOADEP"; fi
}
