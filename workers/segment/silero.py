"""Silero VAD v5 through ONNX Runtime: the default, most accurate segment backend.

The `silero-vad` package is installed without torch, so only its ONNX file is
used (importing the package would import torch). The model is stateful: each
call takes the recurrent state and the previous call's last 64 samples as
context, so every session keeps its own `SileroState`; one ONNX session serves
them all.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers.errors import BadInputError, ModelLoadError
from workers.onnx import create_session
from workers.segment.stage import SAMPLE_RATE, VadBackend
from workers.stage import Capabilities

CONTEXT_SAMPLES = 64  # at 16 kHz, per the model's reference wrapper
_INPUTS = {"input", "state", "sr"}


def model_path() -> Path | None:
    """Where the installed silero-vad package keeps its ONNX file, found without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"


@dataclass
class SileroState:
    """One stream's recurrent state and audio context."""

    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT_SAMPLES, np.float32))


class SileroVad(VadBackend):
    name = "silero"
    capabilities = Capabilities(sample_rate=SAMPLE_RATE, devices=("cpu", "cuda"))
    frame_samples = 512

    _session = None
    _sr = np.array(SAMPLE_RATE, dtype=np.int64)

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        path = model_path()
        if path is None:
            return "silero-vad is not installed (pip install --no-deps silero-vad)"
        if not path.is_file():
            return f"silero-vad ONNX model missing: {path}"
        return None

    def _load(self) -> None:
        reason = self.unavailable()
        if reason:
            raise ModelLoadError(reason)
        session = create_session(model_path(), self.settings)
        names = {i.name for i in session.get_inputs()}
        if names != _INPUTS:
            raise ModelLoadError(
                f"unexpected silero-vad ONNX inputs {sorted(names)}; expected {sorted(_INPUTS)}"
            )
        self._session = session

    def close(self) -> None:
        self._session = None
        self.loaded = False

    def new_state(self) -> SileroState:
        return SileroState()

    def speech_prob(self, frame: np.ndarray, state: SileroState) -> float:
        if self._session is None:
            raise ModelLoadError("silero VAD used before load()")
        if len(frame) != self.frame_samples:
            raise BadInputError(f"silero VAD needs {self.frame_samples}-sample frames, got {len(frame)}")
        x = np.concatenate([state.context, np.asarray(frame, np.float32)])[None, :]
        prob, state.state = self._session.run(None, {"input": x, "state": state.state, "sr": self._sr})
        state.context = x[0, -CONTEXT_SAMPLES:]
        return float(prob[0, 0])
