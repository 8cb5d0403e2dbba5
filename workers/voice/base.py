"""The voice-conversion interface: synthesised speech in, the same words in the speaker's voice out."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from workers.records import VoiceProfile
from workers.stage import Backend
from workers.voice.stats import VoiceStats


class VoiceConverter(Backend):
    """Moves a synthesised voice towards a speaker. The output has the input's length and rate, so
    the fit to the segment and the mouth track computed from it stay valid."""

    @abstractmethod
    def _convert(self, audio: np.ndarray, sample_rate: int, source: VoiceStats, target: VoiceProfile) -> np.ndarray:
        ...

    def convert(self, audio: np.ndarray, sample_rate: int, source: VoiceStats, target: VoiceProfile) -> np.ndarray:
        """`audio` (a voice measured as `source`) spoken like `target`; too short to convert: unchanged."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1 or len(audio) < sample_rate // 10:
            return audio
        self.load()
        y = np.asarray(self._convert(audio, sample_rate, source, target), np.float32)
        n = len(audio)
        y = y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
        peak_in, peak_out = float(np.abs(audio).max()), float(np.abs(y).max())
        if peak_out > 0 and peak_in > 0:
            y *= min(1.0, peak_in / peak_out)  # never louder than what was synthesised (no clipping)
        return y
