"""WebRTC VAD: the light fallback segment backend (no model file, pure C).

WebRTC decides speech/non-speech per 10 ms; a 30 ms frame's probability is the
mean of its three decisions (0, 1/3, 2/3 or 1), which gives the segmenter's
hysteresis something to work with. The detector adapts to background noise,
so each session gets its own `webrtcvad.Vad` as its state.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from workers.errors import BadInputError, ModelLoadError
from workers.records import float_to_pcm
from workers.segment.stage import SAMPLE_RATE, VadBackend
from workers.stage import Capabilities

AGGRESSIVENESS = 2  # 0 (keeps most audio) .. 3 (drops most); 2 suits speech over room noise
SUBFRAME = SAMPLE_RATE // 100


class WebRtcVad(VadBackend):
    name = "webrtc"
    capabilities = Capabilities(sample_rate=SAMPLE_RATE)
    frame_samples = 3 * SUBFRAME

    _webrtcvad: Any = None

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("webrtcvad") is None:
            return "webrtcvad is not installed (pip install webrtcvad-wheels)"
        return None

    def _load(self) -> None:
        try:
            import webrtcvad
        except ImportError as e:
            raise ModelLoadError(f"webrtcvad cannot be imported: {e}") from e
        self._webrtcvad = webrtcvad

    def new_state(self) -> Any:
        if self._webrtcvad is None:
            raise ModelLoadError("webrtc VAD used before load()")
        return self._webrtcvad.Vad(AGGRESSIVENESS)

    def speech_prob(self, frame: np.ndarray, state: Any) -> float:
        if len(frame) != self.frame_samples:
            raise BadInputError(f"webrtc VAD needs {self.frame_samples}-sample frames, got {len(frame)}")
        pcm = float_to_pcm(frame)
        step = 2 * SUBFRAME
        votes = sum(state.is_speech(pcm[i : i + step], SAMPLE_RATE) for i in range(0, len(pcm), step))
        return votes / 3
