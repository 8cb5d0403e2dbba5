"""The speaker's own voice: statistics, spectra, Praat conversion, the choice of voice, TTS variants.

Pitch is judged with Praat on real espeak-ng speech; the conversion is checked by measuring its
output (not by the parameters it was given).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest

from workers.errors import BadInputError
from workers.records import Translation, VoiceProfile
from workers.tts.espeak import Espeak
from workers.tts.stage import Synth, TtsBackend, TtsStage
from workers.voice.match import VoiceChooser, VoiceMatcher, distance
from workers.voice.praat import PraatConverter
from workers.voice.spectrum import combine, equalise, spectrum, spectrum_distance_db
from workers.voice.stats import VoiceStats, measure

RATE = 16000
WORDS = "The weather was fine and everybody went outside to play in the park."


def semitones(a: float, b: float) -> float:
    return abs(12 * math.log2(a / b))


def profile_of(stats: VoiceStats, spec: tuple[float, ...] = (), dims: int = 256) -> VoiceProfile:
    return VoiceProfile(tuple([0.0] * dims), stats.f0_median, stats.f0_low, stats.f0_high, stats.formant_1,
                        stats.formant_2, spec)


@pytest.fixture(scope="module")
def espeak(loaded):
    return loaded(Espeak)


def speak(tts: TtsBackend, variant: str, text: str = WORDS) -> np.ndarray:
    import soxr

    s = tts.synthesize(text, "en", 1.0, variant)
    return np.asarray(soxr.resample(s.audio, s.sample_rate, RATE), np.float32)


# -- TTS variants ---------------------------------------------------------------------------------


def test_espeak_variants_are_listed_and_change_the_voice(espeak):
    variants = espeak.variants("en")
    assert variants[0] == "" and {"f4", "m3"} <= set(variants)
    female, male = measure(speak(espeak, "f4"), RATE), measure(speak(espeak, "m3"), RATE)
    assert female.usable and male.usable
    assert semitones(female.f0_median, male.f0_median) >= 5, (female, male)  # a register apart, not a nudge


def test_an_unknown_espeak_variant_is_an_error_naming_it(espeak):
    with pytest.raises(BadInputError, match="no voice variant 'robot9'"):
        espeak.synthesize("Hello.", "en", 1.0, "robot9")


def test_piper_lists_its_voices_as_variants(loaded):
    from workers.tts.piper import Piper

    piper = loaded(Piper)
    variants = piper.variants("en")
    assert variants and all(v for v in variants)  # named voices ("" is only the fallback)
    assert len(piper.synthesize("Hello there.", "en", 1.0, variants[0]).audio) > 0
    with pytest.raises(BadInputError, match="no voice 'nobody'"):
        piper.synthesize("Hello.", "en", 1.0, "nobody")


# -- statistics and spectra -----------------------------------------------------------------------


def test_silence_has_no_usable_statistics_or_spectrum():
    quiet = np.zeros(RATE, np.float32)
    assert not measure(quiet, RATE).usable
    assert spectrum(quiet, RATE) == ()


def test_statistics_combine_weighted_by_voiced_time():
    from workers.voice.stats import combine as combine_stats

    a, b = VoiceStats(100, 90, 120, 500, 1500, 3.0), VoiceStats(200, 180, 240, 600, 1800, 1.0)
    c = combine_stats(a, b)
    assert c.f0_median == pytest.approx(125) and c.voiced_s == 4.0
    assert combine_stats(None, b) is b and combine_stats(a, VoiceStats(0, 0, 0, 0, 0, 0)) is a
    assert combine((1.0, 3.0), 3.0, (5.0, 7.0), 1.0) == (2.0, 4.0)


def test_the_equaliser_moves_a_voice_towards_the_target_spectrum_and_keeps_its_length(espeak):
    male, female = speak(espeak, "m3"), speak(espeak, "f4")
    target = spectrum(female, RATE)
    before = spectrum_distance_db(spectrum(male, RATE), target)
    out = equalise(male, RATE, target)
    assert len(out) == len(male)
    after = spectrum_distance_db(spectrum(out, RATE), target)
    assert after < 0.6 * before, (before, after)
    assert spectrum_distance_db(target, target) == 0.0


def test_the_equaliser_is_bounded_per_band(espeak):
    x = speak(espeak, "m3")
    own = spectrum(x, RATE)
    wild = tuple(v + (30.0 if i % 2 else -30.0) for i, v in enumerate(own))  # ±130 dB: absurd
    y = equalise(x, RATE, wild)
    assert np.isfinite(y).all() and np.abs(y).max() < 20 * np.abs(x).max()


# -- Praat conversion -----------------------------------------------------------------------------


def test_praat_conversion_brings_the_pitch_to_the_speaker_and_keeps_length_and_peak(espeak, settings):
    x = speak(espeak, "m3")
    source = measure(x, RATE)
    goal = VoiceStats(source.f0_median * 1.5, source.f0_low * 1.5, source.f0_high * 1.5, source.formant_1 * 1.1,
                      source.formant_2 * 1.1, 2.0)
    conv = PraatConverter(settings)
    y = conv.convert(x, RATE, source, profile_of(goal))
    assert len(y) == len(x) and np.abs(y).max() <= np.abs(x).max() + 1e-6
    got = measure(y, RATE)
    assert semitones(got.f0_median, goal.f0_median) <= 1.0, (source.f0_median, goal.f0_median, got.f0_median)
    assert semitones(source.f0_median, goal.f0_median) > 6  # it was far: the check above can fail


def test_praat_conversion_is_reproducible(espeak, settings):
    """Praat's resynthesis jitters at random; seeded, the same input gives the same dub."""
    from parselmouth.praat import run

    x = speak(espeak, "m3")
    source = measure(x, RATE)
    goal = profile_of(VoiceStats(source.f0_median * 1.3, source.f0_low * 1.3, source.f0_high * 1.3,
                                 source.formant_1 * 1.05, source.formant_2 * 1.05, 2.0))
    conv = PraatConverter(settings)
    first = conv.convert(x, RATE, source, goal)
    run("random_initializeSafelyAndUnpredictably ()\n")  # whatever another Praat user left behind
    assert np.array_equal(conv.convert(x, RATE, source, goal), first)


def test_praat_conversion_leaves_too_short_or_unmeasured_audio_alone(settings):
    conv = PraatConverter(settings)
    short = np.full(100, 0.1, np.float32)
    assert np.array_equal(conv.convert(short, RATE, VoiceStats(100, 90, 110, 500, 1500, 1), profile_of(
        VoiceStats(200, 180, 220, 500, 1500, 1))), short)
    noise = np.random.default_rng(0).normal(0, 0.1, RATE).astype(np.float32)
    unmeasured = VoiceStats(0, 0, 0, 0, 0, 0)
    assert np.allclose(conv.convert(noise, RATE, unmeasured, profile_of(VoiceStats(200, 180, 220, 500, 1500, 1))),
                       noise)


# -- choosing the closest voice -------------------------------------------------------------------


class PitchedTts(TtsBackend):
    """espeak's male voice re-pitched per variant: known voices whose pitch differs by design."""

    name: ClassVar[str] = "pitched"
    PITCH: ClassVar[dict[str, float]] = {"": 1.0, "low": 0.8, "high": 1.6, "mid": 1.25}

    def __init__(self, settings, espeak: Espeak) -> None:
        super().__init__(settings)
        self.espeak = espeak
        self.calls: list[tuple[str, str]] = []

    def _load(self) -> None:
        pass

    def voices(self) -> frozenset[str]:
        return frozenset({"en"})

    def variants(self, lang: str) -> tuple[str, ...]:
        return tuple(self.PITCH)

    def synthesize(self, text: str, lang: str, speed: float = 1.0, variant: str = "") -> Synth:
        import parselmouth
        from parselmouth.praat import call

        self.calls.append((text, variant))
        s = self.espeak.synthesize(text, lang, speed, "m3")
        snd = parselmouth.Sound(np.asarray(s.audio, np.float64), s.sample_rate)
        base = measure(s.audio, s.sample_rate).f0_median
        out = call(snd, "Change gender", 60.0, 500.0, 1.0, base * self.PITCH[variant], 1.0, 1.0)
        return Synth(np.asarray(out.values[0], np.float32), s.sample_rate)


@pytest.fixture(scope="module")
def pitched(espeak, settings):
    return PitchedTts(settings, espeak)


def test_the_chooser_picks_the_voice_of_the_nearest_pitch_and_measures_each_once(pitched):
    chooser = VoiceChooser(pitched)
    mid = chooser.measure("en", "mid")[0]
    target = VoiceStats(mid.f0_median * 1.02, mid.f0_low, mid.f0_high, mid.formant_1, mid.formant_2, 2.0)
    assert chooser.choose("en", target).variant == "mid"
    high = chooser.measure("en", "high")[0]
    assert chooser.choose("en", VoiceStats(high.f0_median, high.f0_low, high.f0_high, high.formant_1,
                                           high.formant_2, 2.0)).variant == "high"
    measured = [v for _, v in pitched.calls]
    assert sorted(measured) == sorted(PitchedTts.PITCH)  # each candidate synthesised once, cached after


def test_a_voice_this_close_is_not_converted(pitched):
    chooser = VoiceChooser(pitched)
    low = chooser.measure("en", "low")[0]
    assert chooser.choose("en", low).convert is False
    far = VoiceStats(low.f0_median * 0.9, low.f0_low, low.f0_high, low.formant_1, low.formant_2, 2.0)
    assert chooser.choose("en", far).convert is True  # ~1.8 semitones off


def test_distance_uses_the_spectrum_when_both_have_one():
    a, b = VoiceStats(100, 90, 110, 500, 1500, 1), VoiceStats(100, 90, 110, 600, 1800, 1)
    assert distance(a, b) > 0  # formants apart
    flat, tilted = tuple([0.0] * 24), tuple(float(i) / 4 for i in range(24))
    assert distance(a, b, flat, flat) == 0.0  # same pitch, same spectral shape
    assert distance(a, b, flat, tilted) == pytest.approx(spectrum_distance_db(flat, tilted))


class _Recorder(PraatConverter):
    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.targets: list[float] = []

    def _convert(self, audio, sample_rate, source, target):
        self.targets.append(target.f0_median)
        return super()._convert(audio, sample_rate, source, target)


def test_the_matcher_keeps_one_voice_per_speaker_and_session_and_forgets_ended_sessions(pitched, settings):
    conv = _Recorder(settings)
    m = VoiceMatcher(pitched, conv)
    chooser = m.chooser
    low, high = chooser.measure("en", "low")[0], chooser.measure("en", "high")[0]
    p_low, p_high = profile_of(low), profile_of(high)
    assert m.voice("s1", "S1", "en", p_low).variant == "low"
    assert m.voice("s1", "S2", "en", p_high).variant == "high"
    # the same speaker later sounds different (a noisy segment): their voice stays
    assert m.voice("s1", "S1", "en", p_high).variant == "low"
    assert m.voice("s1", "S1", "en", None) is None  # no profile (speaker turns off): the plain voice
    m.end_session("s1")
    assert m.voice("s1", "S1", "en", p_high).variant == "high"

    syn = pitched.synthesize(WORDS, "en", 1.0, "")
    target = VoiceStats(high.f0_median, high.f0_low, high.f0_high, high.formant_1, high.formant_2, 2.0)
    choice = chooser.choose("en", VoiceStats(low.f0_median * 0.7, low.f0_low, low.f0_high, low.formant_1,
                                             low.formant_2, 2.0))
    out = m.convert(syn, choice, profile_of(target))
    assert len(out.audio) == len(syn.audio) and conv.targets == [pytest.approx(target.f0_median)]
    unchanged = m.convert(syn, chooser.choose("en", low), profile_of(low))  # close already: as synthesised
    assert unchanged is syn


# -- SpeechT5, the neural converter (tiny random weights; the real ones come from the hub) ---------


@pytest.fixture(scope="module")
def speecht5(tmp_path_factory):
    pytest.importorskip("torch", reason="the model layer (scripts/install.sh --models)")
    from workers.models import tiny

    return tiny.speecht5_vc(tmp_path_factory.mktemp("speecht5"), speaker_dims=512)


def test_speecht5_converts_through_transformers_and_keeps_the_length(speecht5, tmp_path):
    from workers.settings import load_settings
    from workers.voice.speecht5 import SpeechT5Converter

    model, vocoder = speecht5
    s = load_settings(cache_dir=tmp_path, voice={"backend": "speecht5", "speecht5_model": str(model),
                                                 "speecht5_vocoder": str(vocoder)})
    conv = SpeechT5Converter(s)
    x = (0.3 * np.sin(2 * np.pi * 150 * np.arange(RATE) / RATE)).astype(np.float32)
    target = VoiceProfile(tuple(np.linspace(-1, 1, 512)), 150, 140, 160, 500, 1500)
    y = conv.convert(x, RATE, VoiceStats(150, 140, 160, 500, 1500, 1), target)
    assert conv.dims == 512
    assert len(y) == len(x) and np.isfinite(y).all()
    with pytest.raises(BadInputError, match=r"512-d x-vector.*256 dimensions.*xvector"):
        conv.convert(x, RATE, VoiceStats(150, 140, 160, 500, 1500, 1),
                     VoiceProfile(tuple([0.0] * 256), 150, 140, 160, 500, 1500))


def test_speecht5_without_weights_says_how_to_get_them(tmp_path):
    from workers.errors import ModelLoadError
    from workers.settings import load_settings
    from workers.voice.speecht5 import SpeechT5Converter

    pytest.importorskip("torch", reason="the model layer (scripts/install.sh --models)")
    conv = SpeechT5Converter(load_settings(cache_dir=tmp_path, voice={"speecht5_model": "microsoft/speecht5_vc"}))
    with pytest.raises(ModelLoadError, match="speecht5_vc"):
        conv.load()


def test_a_warmed_up_tts_stage_has_measured_its_languages_voices_before_the_first_segment(espeak, settings):
    """A live worker warms up before it reports ready: a session's first segment in a warm
    language then synthesises only its own text (the client's first dub once waited 3.6 s)."""
    warm = settings.model_copy(update={
        "tts": settings.tts.model_copy(update={"warm_languages": ("en", "xx")}),  # xx: no voice, skipped
        "voice": settings.voice.model_copy(update={"match": True, "backend": "none"})})
    tts = PitchedTts(warm, espeak)
    stage = TtsStage(tts)
    stage.load()
    stage.warm_up()
    assert sorted(v for _, v in tts.calls) == sorted(["", *PitchedTts.PITCH])  # a plain synth, then each voice
    tts.calls.clear()
    mid = stage.matcher.chooser.measure("en", "mid")[0]
    tr = Translation("s1", 0, 0.0, 1.5, "Hello there.", "en", "en", 0.0, speaker="S1", voice=profile_of(mid))
    (out,) = stage.process_sync(tr)
    assert out.seq == 0 and {t for t, _ in tts.calls} == {"Hello there."}
