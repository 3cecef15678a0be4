#!/usr/bin/env bash
# Wheels a GPU machine without registry access may lack, for benchmarks/gpu_check.sh:
# run on a machine with package-registry access, then copy .whl with the checkout.
# An image with Python 3.12, torch, torchaudio, typer, rich, numpy, pandas and
# nvidia-ml-py; greensed's audio I/O also needs soundfile (and its cffi).
# Versions come from requirements.lock. codecarbon is not needed there: the
# check meters the GPU with the NVML counter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p .whl
for name in soundfile cffi pycparser; do
  pin=$(grep -i "^$name==" requirements.lock) || { echo "error: $name not in requirements.lock" >&2; exit 2; }
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "$pin"
done
ls -l .whl
