"""What every Whisper backend shares: languages it can hear, input checks, English-only models."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from workers.asr.stage import AsrBackend
from workers.errors import BadInputError, UnsupportedLanguageError
from workers.stage import Capabilities

SAMPLE_RATE = 16000
ENGLISH_ONLY = Capabilities(languages=frozenset({"en"}), sample_rate=SAMPLE_RATE, devices=("cpu", "cuda"))


class WhisperBackend(AsrBackend):
    english_only: bool = False

    @abstractmethod
    def supported(self) -> frozenset[str]:
        """Language codes the loaded model can transcribe."""

    def supported_languages(self) -> frozenset[str]:
        self.load()
        return self.supported()

    def checked(self, audio: np.ndarray, language: str | None) -> np.ndarray:
        """The audio as contiguous float32, after rejecting what Whisper cannot take."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise BadInputError(f"asr: expected non-empty mono 16 kHz audio, got shape {audio.shape}")
        if language is not None:
            self._check_language(language)
        return audio

    def _check_language(self, language: str) -> None:
        if self.english_only and language != "en":
            raise UnsupportedLanguageError(
                f"asr model {self.settings.asr.model!r} is English-only and cannot transcribe {language!r}; "
                "use a multilingual model (asr.model=base)"
            )
        supported = self.supported()
        if language not in supported:
            raise UnsupportedLanguageError(
                f"whisper cannot transcribe {language!r}; languages: {', '.join(sorted(supported))}"
            )
