"""TTS stage: translation -> dubbed speech fitted to the segment's original timing."""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from workers.errors import UnsupportedLanguageError
from workers.records import DubbedSpeech, SessionControl, Translation, float_to_pcm, now
from workers.stage import Backend, Stage
from workers.tts.fit import MOUTH_RATE, fit_to_duration, mouth_track, rounding_track

if TYPE_CHECKING:
    from workers.voice.base import VoiceConverter
    from workers.voice.match import VoiceMatcher as VoiceMatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Synth:
    """Synthesized speech; `phonemes` are (phoneme, start_s, end_s) when the engine gives them."""

    audio: np.ndarray  # float32 mono
    sample_rate: int
    phonemes: tuple[tuple[str, float, float], ...] | None = None


class TtsBackend(Backend):
    """A speech synthesiser. `speed` > 1 speaks faster (used to fit the segment)."""

    @abstractmethod
    def voices(self) -> frozenset[str]:
        """Languages (ISO 639-1) this backend can speak."""

    @abstractmethod
    def synthesize(self, text: str, lang: str, speed: float = 1.0, variant: str = "") -> Synth:
        """`variant` is one of `variants(lang)`; "" is the language's default voice."""

    def variants(self, lang: str) -> tuple[str, ...]:
        """The voices this backend can speak `lang` with (for matching a speaker); "" is the default."""
        return ("",)


class TtsStage(Stage[Translation, DubbedSpeech]):
    name = "tts"
    backend: TtsBackend

    def __init__(self, backend: TtsBackend, metrics=None) -> None:
        super().__init__(backend, metrics)
        self.matcher: VoiceMatcher | None = None  # the speaker's own voice (voice.match)

    def load(self) -> None:
        super().load()
        v = self.backend.settings.voice
        if v.match and self.matcher is None:
            from workers.voice.match import VoiceMatcher

            self.matcher = VoiceMatcher(self.backend, self._converter())

    def _converter(self) -> VoiceConverter | None:
        v = self.backend.settings.voice
        if v.backend == "none":
            return None
        from workers.registry import create_backend

        conv = create_backend("voice", self.backend.settings)
        reason = type(conv).unavailable()
        if reason:
            log.warning("tts: voice conversion %s is off (%s): each speaker gets the closest voice only",
                        v.backend, reason)
            return None
        conv.load()
        return conv  # type: ignore[return-value]

    def warm_up(self) -> None:
        """Also measures the candidate voices of `tts.warm_languages` (3-4 s a language on first use)."""
        from workers.voice.match import reference_text  # it imports this module

        voices = self.backend.voices()
        for lang in (x for x in self.backend.settings.tts.warm_languages if x in voices):
            self.backend.synthesize(reference_text(lang), lang)
            if self.matcher is not None:
                for variant in self.backend.variants(lang):
                    self.matcher.chooser.measure(lang, variant)

    def end_session(self, session_id: str) -> None:
        if self.matcher is not None:
            self.matcher.end_session(session_id)

    def check_session(self, control: SessionControl) -> None:
        voices = self.backend.voices()
        missing = [lang for lang in control.target_langs if lang not in voices]
        if missing:
            raise UnsupportedLanguageError(
                f"no {self.backend.name} voice for {', '.join(missing)}; voices: {', '.join(sorted(voices))}")

    def _handle(self, tr: Translation) -> list[DubbedSpeech]:
        s = self.backend.settings.tts
        target = tr.end_s - tr.start_s
        choice = self.matcher.voice(tr.session_id, tr.speaker, tr.target_lang, tr.voice) if self.matcher else None
        variant = choice.variant if choice else ""
        synth = self.backend.synthesize(tr.text, tr.target_lang, 1.0, variant)
        natural = len(synth.audio) / synth.sample_rate
        speed = min(max(natural / target, s.min_stretch), s.max_stretch) if target > 0 else 1.0
        if abs(speed - 1.0) > 0.05:  # let the engine change its rate: better than stretching audio
            synth = self.backend.synthesize(tr.text, tr.target_lang, speed, variant)
        if self.matcher is not None:
            synth = self.matcher.convert(synth, choice, tr.voice)
        audio, scale = fit_to_duration(synth.audio, synth.sample_rate, target)
        mouth = mouth_track(audio, synth.sample_rate, synth.phonemes, scale)
        rounding = rounding_track(audio, synth.sample_rate, synth.phonemes, scale)
        return [
            DubbedSpeech(
                session_id=tr.session_id,
                seq=tr.seq,
                start_s=tr.start_s,
                end_s=tr.end_s,
                target_lang=tr.target_lang,
                text=tr.text,
                sample_rate=synth.sample_rate,
                pcm=float_to_pcm(audio),
                mouth_rate=MOUTH_RATE,
                mouth=tuple(float(x) for x in mouth),
                speech_end_at=tr.speech_end_at,
                produced_at=now(),
                mouth_round=tuple(float(x) for x in rounding),
                speaker=tr.speaker,
            )
        ]
