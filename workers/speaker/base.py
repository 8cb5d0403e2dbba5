"""The speaker-embedding interface: audio in, an L2-normalised vector out."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from workers.errors import BadInputError
from workers.stage import Backend


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class SpeakerBackend(Backend):
    """A speaker encoder; embeddings of the same voice are close in cosine similarity."""

    sample_rate: int = 16000

    @abstractmethod
    def _embed(self, audio16k: np.ndarray) -> np.ndarray: ...

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Embedding of one utterance (any rate; resampled to 16 kHz)."""
        self.load()
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1 or audio.size < sample_rate // 10:
            raise BadInputError(f"speaker: need at least 0.1 s of mono audio, got shape {audio.shape}")
        if sample_rate != self.sample_rate:
            import soxr

            audio = soxr.resample(audio, sample_rate, self.sample_rate)
        e = np.asarray(self._embed(audio), np.float32)
        return e / (np.linalg.norm(e) + 1e-12)
