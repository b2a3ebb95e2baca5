#!/usr/bin/env bash
# GPU smoke test, one command on a CUDA machine (never run in CI):
#   bash scripts/gpu_smoke.sh
# Trains CoOp, CoCoOp and DualPromptMI for a few steps at ViT-B/16 shapes with random weights,
# in fp16 and in amp, and prints per trainer the step time, images per second and peak CUDA
# memory, for the short text pass and the 77-position one; then the peak memory of a step at
# 50-1000 classes with and without chunked text passes (MODEL.TEXT_CHUNK_SIZE), at CoOp's
# published batch (32) and DualPromptMI's (4), with a plot.
# Env: PYTHON (python), STEPS (5), CLASSES (50), BATCH (4), OUTPUT (output/gpu_smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
STEPS=${STEPS:-5}
CLASSES=${CLASSES:-50}
BATCH=${BATCH:-4}
OUTPUT=${OUTPUT:-output/gpu_smoke}

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "error: scripts/gpu_smoke.sh needs a CUDA device, and torch.cuda.is_available() is False here" >&2
  exit 2
fi
mkdir -p "$OUTPUT"
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
bench=("$PYTHON" -m tools.bench --arch vit_b16 --device cuda)
for prec in fp16 amp; do
  echo "== train step, $prec, $CLASSES classes, batch $BATCH"
  "${bench[@]}" --precision "$prec" --classes "$CLASSES" --batch "$BATCH" --steps "$STEPS" --compare-full \
    --json "$OUTPUT/speed_$prec.json"
done
echo "== peak memory against the class count, fp16, published batch sizes (CoOp 32, DualPromptMI 4)"
"${bench[@]}" --precision fp16 --steps 1 --memory-curve 50 200 500 1000 --chunks 0 100 --trainers CoOp --batch 32 \
  --plot "$OUTPUT/memory_coop_fp16.png" --json "$OUTPUT/memory_coop_fp16.json"
"${bench[@]}" --precision fp16 --steps 1 --memory-curve 50 200 500 1000 --chunks 0 100 --trainers DualPromptMI --batch 4 \
  --plot "$OUTPUT/memory_dualpromptmi_fp16.png" --json "$OUTPUT/memory_dualpromptmi_fp16.json"
echo "done: numbers and plots in $OUTPUT"
