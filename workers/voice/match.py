"""The dub in a voice like the speaker's: per session and speaker, the closest of the TTS voices
(chosen once, so a speaker keeps one voice), then converted towards the speaker.

The choice goes by pitch and formants (Praat), not by the speaker embedding: the embedding is
what the benchmark grades similarity with (workers/bench/voice_quality.py), so choosing with it
would grade the choice by its own yardstick.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from workers.records import VoiceProfile
from workers.stage import Backend
from workers.tts.stage import Synth, TtsBackend
from workers.voice.spectrum import spectrum, spectrum_distance_db
from workers.voice.stats import VoiceStats, measure

log = logging.getLogger(__name__)

# What each candidate voice says to be measured: ~4 s of speech, enough voiced time for stable
# statistics; not one of the benchmark's sentences (workers/bench/voice_quality.py grades on those).
REFERENCE = {
    "en": "Good morning, everyone. Thank you for joining the call; shall we look at the numbers?",
    "es": "Buenos días a todos. Gracias por uniros a la llamada; ¿miramos las cifras?",
    "fr": "Bonjour à tous. Merci de participer à l'appel ; regardons les chiffres ?",
    "it": "Buongiorno a tutti. Grazie per essere in chiamata; guardiamo i numeri?",
    "pt": "Bom dia a todos. Obrigado por se juntarem à chamada; vemos os números?",
    "ca": "Bon dia a tothom. Gràcies per unir-vos a la trucada; mirem les xifres?",
    "gl": "Bos días a todos. Grazas por unírvos á chamada; miramos as cifras?",
    "de": "Guten Morgen zusammen. Danke, dass ihr dabei seid; schauen wir uns die Zahlen an?",
}


def reference_text(lang: str) -> str:
    """The language's own reference sentence where we have one; English words otherwise."""
    return REFERENCE.get(lang.split("-")[0].lower(), REFERENCE["en"])


def distance(a: VoiceStats, b: VoiceStats, spec_a: tuple[float, ...] = (), spec_b: tuple[float, ...] = ()) -> float:
    """How far apart two voices are: semitones of median pitch, combined with the dB (RMS over bands)
    between their spectral shapes, or, without spectra, semitones of vocal-tract length (the geometric
    mean of F1 and F2 scales inversely with it). On espeak's variants the spectral shape told the
    right register apart where the formant medians did not (they shift with what is said)."""
    pitch = 12 * math.log2(a.f0_median / b.f0_median)
    if spec_a and len(spec_a) == len(spec_b):
        return math.hypot(pitch, spectrum_distance_db(spec_a, spec_b))
    tract = 12 * math.log2(math.sqrt(a.formant_1 * a.formant_2 / (b.formant_1 * b.formant_2)))
    return math.hypot(pitch, tract)


@dataclass(frozen=True)
class VoiceChoice:
    variant: str  # of TtsBackend.variants(lang)
    stats: VoiceStats  # of that voice, measured on the reference text
    distance: float  # to the speaker when chosen
    spectrum: tuple[float, ...] = ()
    convert: bool = True  # False: already this close, resynthesis would cost more than it gives


CONVERT_ABOVE_ST = 0.5  # median pitch this far off: convert. Closer, Praat's resynthesis lost more
# than it gained (espeak's m3 dubbing its own English: similarity 0.91 as it is, 0.84 converted). The
# formant medians are no test: they move by more than a semitone with what is said.


def worth_converting(voice: VoiceStats, speaker: VoiceStats) -> bool:
    return abs(12 * math.log2(voice.f0_median / speaker.f0_median)) >= CONVERT_ABOVE_ST


class VoiceChooser:
    """The closest voice of a TTS backend to a speaker; candidates are measured once per language."""

    def __init__(self, tts: TtsBackend) -> None:
        self.tts = tts
        self._measured: dict[tuple[str, str], tuple[VoiceStats, tuple[float, ...]]] = {}

    def measure(self, lang: str, variant: str) -> tuple[VoiceStats, tuple[float, ...]]:
        key = (lang, variant)
        if key not in self._measured:
            syn = self.tts.synthesize(reference_text(lang), lang, 1.0, variant)
            self._measured[key] = (measure(syn.audio, syn.sample_rate), spectrum(syn.audio, syn.sample_rate))
        return self._measured[key]

    def choose(self, lang: str, target: VoiceStats, timbre: tuple[float, ...] = ()) -> VoiceChoice:
        scored = [VoiceChoice(v, st, distance(st, target, sp, timbre), sp, worth_converting(st, target))
                  for v in self.tts.variants(lang)
                  if (m := self.measure(lang, v))[0].usable for st, sp in [m]]
        if not scored:  # nothing measurable (e.g. a silent engine): the default voice, unconverted
            st, sp = self.measure(lang, "")
            return VoiceChoice("", st, 0.0, sp, False)
        return min(scored, key=lambda c: c.distance)


class VoiceMatcher:
    """What the TTS stage asks: which voice for this speaker, and the synthesised audio converted."""

    def __init__(self, tts: TtsBackend, converter: Backend | None) -> None:
        self.chooser = VoiceChooser(tts)
        self.converter = converter  # a workers.voice.base.VoiceConverter, or None: choice only
        self._chosen: dict[tuple[str, str, str], VoiceChoice] = {}  # (session, speaker, lang) -> voice

    def voice(self, session_id: str, speaker: str, lang: str, profile: VoiceProfile | None) -> VoiceChoice | None:
        """The speaker's voice in `lang`: chosen on their first segment, kept for the session."""
        if profile is None:
            return None
        key = (session_id, speaker, lang)
        if key not in self._chosen:
            target = VoiceStats.of(profile)
            if not target.usable:
                return None
            choice = self.chooser.choose(lang, target, profile.spectrum)
            log.info("tts: session %s speaker %s (%.0f Hz) speaks %s with voice %r (%.1f semitones away)",
                     session_id, speaker or "?", target.f0_median, lang, choice.variant or "default", choice.distance)
            self._chosen[key] = choice
        return self._chosen[key]

    def convert(self, synth: Synth, choice: VoiceChoice | None, profile: VoiceProfile | None) -> Synth:
        if self.converter is None or choice is None or profile is None or not choice.convert:
            return synth
        audio = self.converter.convert(synth.audio, synth.sample_rate, choice.stats, profile)
        return Synth(np.asarray(audio, np.float32), synth.sample_rate, synth.phonemes)

    def end_session(self, session_id: str) -> None:
        self._chosen = {k: v for k, v in self._chosen.items() if k[0] != session_id}
