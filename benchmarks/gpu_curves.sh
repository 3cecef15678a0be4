#!/usr/bin/env bash
# 200-epoch curves of the `small` preset on a GPU machine (benchmarks/curves/gpu-grid.toml),
# resumable: run it again and finished cells are skipped, cut ones resumed.
#   bash benchmarks/gpu_curves.sh [--dry-run] [greensed reproduce options...]
# GREENSED_CURVES_OUT (default benchmarks/curves-gpu) is where the runs go;
# GREENSED_CURVES_PARALLEL (default 3) how many cells share the GPU at once.
# Commit their logs (epochs.jsonl, summary.json, config.toml, hardware.json), never
# their checkpoints; `greensed bench-policies` reads them like the CPU corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
OUT="${GREENSED_CURVES_OUT:-benchmarks/curves-gpu}"
exec "$PY" -m greensed.cli reproduce benchmarks/curves/gpu-grid.toml --out "$OUT" \
  --max-parallel "${GREENSED_CURVES_PARALLEL:-3}" "$@"
