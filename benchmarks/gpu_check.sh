#!/usr/bin/env bash
# GPU check, in under 5 minutes on a machine with one NVIDIA GPU (e.g. an H100):
#   1. what the machine measures (NVML counter vs models),
#   2. a short real training on generated data with --device cuda (NVML meter),
#   3. a DESED-sized epoch (5,664 training + 2,700 validation clips, random
#      data of the right shapes) in fp32 and in bf16: clips/s, seconds and Wh per
#      epoch from the NVML counter, GPU utilisation.
# Uses .venv if present, else the machine's python3 (which must hold torch,
# torchaudio and nvidia-ml-py; soundfile is carried as wheels in .whl/, made
# here by benchmarks/gpu_wheels.sh and installed with --no-index into /tmp/site).
# GREENSED_GPU_COMPILE=1 adds a bf16 + torch.compile epoch run (about 1 more minute).
# GREENSED_CHECK_SMOKE=1 runs every step on the CPU with tiny sizes and a constant
# meter (tests/test_benchmarks.py does, so that the script cannot rot between uses);
# GREENSED_CHECK_DATA then names the dataset of its short training.
# Results land in $OUT (or benchmarks/results/) as JSON.
# The 200-epoch curves on a GPU machine are benchmarks/gpu_curves.sh (hours, not minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
RES="${OUT:-benchmarks/results}"
mkdir -p "$RES"
# Every step runs even after one fails; the exit status says whether any did.
failed=0
fail() { echo "FAILED: $1" >&2; failed=1; }
DEV=cuda METER=nvml SIZES=() TRAIN_SIZES=()
if [ "${GREENSED_CHECK_SMOKE:-0}" = 1 ]; then
  DEV=cpu METER=constant:30
  SIZES=(--batch-size 4 --steps 1 --val-clips 4 --heldout-clips 4)
  TRAIN_SIZES=(--batch-size 4 --max-steps-per-epoch 1)
  [ -n "${GREENSED_CHECK_DATA:-}" ] && TRAIN_SIZES+=(--data "$GREENSED_CHECK_DATA")
fi
nvidia-smi --query-gpu=name,driver_version,power.draw,power.limit --format=csv || true
"$PY" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
PY
"$PY" -m greensed.cli meters || true
if "$PY" -c "import soundfile" 2>/dev/null; then
  timeout 120 "$PY" -m greensed.cli train --device "$DEV" --epochs 2 --stop max-epochs \
    --meter "$METER" "${TRAIN_SIZES[@]}" --cache-dir "${GREENSED_CACHE:-/tmp/greensed-cache}" \
    --out "$RES/gpu-run" || fail "short training"
else
  echo "soundfile missing: skipping the short training on generated audio (carry it in .whl/)"
fi
for p in fp32 bf16; do
  timeout 100 "$PY" benchmarks/epoch_bench.py --device "$DEV" --precision "$p" --epochs 2 \
    --meter "$METER" "${SIZES[@]}" --out "$RES/gpu-epoch-$p.json" || fail "epoch bench $p"
done
if [ "${GREENSED_GPU_COMPILE:-0}" = 1 ]; then
  timeout 150 "$PY" benchmarks/epoch_bench.py --device "$DEV" --precision bf16 --compile \
    --epochs 2 --meter "$METER" "${SIZES[@]}" --out "$RES/gpu-epoch-bf16-compile.json" || fail "epoch bench bf16 compile"
fi
exit "$failed"
