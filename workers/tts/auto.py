"""The default TTS: Piper where a Piper voice exists for the language, MMS-TTS where its voice is
here, espeak-ng for the rest.

A composition of the two real backends (not a copy of either): each loads and
speaks as it does alone. If one of them cannot run on this machine the other
serves what it can, so a host without Piper still dubs, robotically.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from workers.errors import ModelLoadError, UnsupportedLanguageError
from workers.settings import Settings
from workers.stage import Capabilities
from workers.tts.espeak import Espeak
from workers.tts.mms import MmsTts
from workers.tts.piper import Piper
from workers.tts.stage import Synth, TtsBackend
from workers.tts.voices import TableTts

log = logging.getLogger(__name__)


class AutoTts(TtsBackend):
    name: ClassVar[str] = "auto"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, sample_rate=None, devices=("cpu", "cuda"))
    PARTS: ClassVar[tuple[type[TableTts], ...]] = (Piper, MmsTts, Espeak)  # best first

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.parts: list[TableTts] = [cls(settings) for cls in self.PARTS]
        self.active: list[TableTts] = []

    @classmethod
    def unavailable(cls) -> str | None:
        reasons = [(part.name, part.unavailable()) for part in cls.PARTS]
        if all(r for _, r in reasons):
            return "; ".join(f"{name}: {r}" for name, r in reasons)
        return None

    def _load(self) -> None:
        problems = []
        for part in self.parts:
            reason = part.unavailable()
            try:
                if reason:
                    raise ModelLoadError(reason)
                part.load()
            except ModelLoadError as e:
                problems.append(f"{part.name}: {e}")
                log.warning("tts/auto: %s unavailable, continuing without it: %s", part.name, e)
                continue
            self.active.append(part)
        if not self.active:
            raise ModelLoadError("no TTS engine can run: " + "; ".join(problems))

    def voices(self) -> frozenset[str]:
        self.load()
        return frozenset().union(*(p.voices() for p in self.active))

    def backend_for(self, lang: str) -> TtsBackend:
        """The best engine that speaks `lang`."""
        self.load()
        for part in self.active:
            if part.has_voice(lang):
                return part
        raise UnsupportedLanguageError(
            f"tts/auto has no voice for {lang!r}; languages: {', '.join(sorted(self.voices())) or 'none'}"
        )

    def variants(self, lang: str) -> tuple[str, ...]:
        """The best engine's voices only: a closer voice from a worse engine costs more than it gives
        (the conversion towards the speaker does the rest)."""
        return self.backend_for(lang).variants(lang)

    def synthesize(self, text: str, lang: str, speed: float = 1.0, variant: str = "") -> Synth:
        return self.backend_for(lang).synthesize(text, lang, speed, variant)

    def close(self) -> None:
        for part in self.parts:
            part.close()
        self.active = []
        self.loaded = False
