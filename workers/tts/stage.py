"""TTS stage: translation -> dubbed speech fitted to the segment's original timing."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np

from workers.records import DubbedSpeech, Translation, float_to_pcm, now
from workers.stage import Backend, Stage
from workers.tts.fit import MOUTH_RATE, fit_to_duration, mouth_track


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
    def synthesize(self, text: str, lang: str, speed: float = 1.0) -> Synth: ...


class TtsStage(Stage[Translation, DubbedSpeech]):
    name = "tts"
    backend: TtsBackend

    def _handle(self, tr: Translation) -> list[DubbedSpeech]:
        s = self.backend.settings.tts
        target = tr.end_s - tr.start_s
        synth = self.backend.synthesize(tr.text, tr.target_lang)
        natural = len(synth.audio) / synth.sample_rate
        speed = min(max(natural / target, s.min_stretch), s.max_stretch) if target > 0 else 1.0
        if abs(speed - 1.0) > 0.05:  # let the engine change its rate: better than stretching audio
            synth = self.backend.synthesize(tr.text, tr.target_lang, speed=speed)
        audio, scale = fit_to_duration(synth.audio, synth.sample_rate, target)
        mouth = mouth_track(audio, synth.sample_rate, synth.phonemes, scale)
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
            )
        ]
