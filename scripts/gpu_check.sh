#!/usr/bin/env bash
# Every GPU path once, with figures, in about ten minutes on a CUDA machine:
#   scripts/gpu_check.sh [OUT_DIR]        (default docs/bench/gpu; writes gpu_check.json)
# Installs the GPU extra (onnxruntime-gpu instead of onnxruntime, the model layer) into its own
# venv, .venv-gpu, so the CPU venv CI uses is left alone; then runs workers/bench/gpu_check.py:
# providers, faster-whisper float16, Whisper / Marian / NLLB / VITS on CUDA and TensorRT in fp16,
# Wav2Lip fp16 frames per second batched. `--device cpu` after OUT_DIR is a dry run on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/bench/gpu}
shift || true
VENV=.venv-gpu bash scripts/install.sh --gpu
# the CUDA and cuDNN libraries of the nvidia-* wheels torch brings serve onnxruntime-gpu too
export LD_LIBRARY_PATH="$(find .venv-gpu -path '*/site-packages/nvidia/*' -type d -name lib | paste -sd: -)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec .venv-gpu/bin/python -m workers.bench.gpu_check --out "$out" "$@"
