"""Pieces every TTS backend shares: voice lookup by language, request checks, WAV parsing.

Languages are ISO 639-1 codes; a regional tag ("pt-br", "en-gb") picks that
exact voice when a backend has one and its language's default voice otherwise.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import numpy as np

from workers.errors import BadInputError, ModelLoadError, UnsupportedLanguageError
from workers.translate.languages import to_iso1
from workers.tts.stage import TtsBackend

V = TypeVar("V")


class VoiceTable(Generic[V]):
    """Language -> voice for one backend; `get` raises an error that lists what is installed."""

    def __init__(self, backend: str, by_lang: Mapping[str, V], by_tag: Mapping[str, V] | None = None) -> None:
        self.backend = backend
        self.by_lang = dict(by_lang)
        self.by_tag = {k.lower(): v for k, v in (by_tag or {}).items()}

    def languages(self) -> frozenset[str]:
        return frozenset(self.by_lang)

    def has(self, lang: str) -> bool:
        return lang.lower() in self.by_tag or to_iso1(lang) in self.by_lang

    def get(self, lang: str) -> V:
        voice = self.by_tag.get(lang.lower())
        if voice is None:
            voice = self.by_lang.get(to_iso1(lang) or "")
        if voice is None:
            have = ", ".join(sorted(self.by_lang)) or "none installed"
            raise UnsupportedLanguageError(f"tts/{self.backend} has no voice for {lang!r}; languages: {have}")
        return voice


def check_request(text: str, speed: float) -> bool:
    """Validate a synthesis request; False when there is nothing to say (the caller returns silence)."""
    if not (speed > 0 and np.isfinite(speed)):
        raise BadInputError(f"tts: speed must be a positive number, got {speed!r}")
    return bool(text.strip())


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes -> (mono float32, sample rate).

    Works on espeak-ng's `--stdout` stream, whose header sizes are placeholders
    (it cannot seek back on a pipe): the stdlib reader stops at the real end.
    """
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise BadInputError(f"not a WAV stream ({len(data)} bytes): {e}") from e
    if width != 2:
        raise BadInputError(f"only 16-bit PCM WAV is supported, got {8 * width}-bit")
    raw = raw[: len(raw) - len(raw) % (2 * channels)]
    pcm = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    return pcm.reshape(-1, channels).mean(axis=1).astype(np.float32), rate


class TableTts(TtsBackend):
    """A TTS backend whose voices are a VoiceTable filled by `_load()`."""

    _table: VoiceTable[Any] | None = None

    def table(self) -> VoiceTable[Any]:
        self.load()
        if self._table is None:
            raise ModelLoadError(f"tts/{self.name}: no voices loaded")
        return self._table

    def voices(self) -> frozenset[str]:
        return self.table().languages()

    def has_voice(self, lang: str) -> bool:
        """True if `lang` (ISO 639-1 or a regional tag such as "pt-br") can be spoken."""
        return self.table().has(lang)

    def close(self) -> None:
        self._table = None
        self.loaded = False
