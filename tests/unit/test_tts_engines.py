"""Piper, espeak-ng and AutoTts on the real packaged voices, and TtsStage end to end."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest

from tests.support.tts_audio import rms
from workers.errors import BadInputError, ModelLoadError, UnsupportedLanguageError
from workers.records import Translation
from workers.registry import backend_class, create_stage
from workers.tts.auto import AutoTts
from workers.tts.espeak import Espeak, parse_voices, words_per_minute
from workers.tts.fit import MOUTH_RATE
from workers.tts.piper import Piper
from workers.tts.voices import parse_wav

FOX = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def piper(loaded):
    return loaded(Piper)


@pytest.fixture(scope="module")
def espeak(loaded):
    return loaded(Espeak)


@pytest.fixture(scope="module")
def auto(loaded):
    return loaded(AutoTts)


def test_registry_names_resolve():
    assert backend_class("tts", "piper") is Piper
    assert backend_class("tts", "espeak") is Espeak
    assert backend_class("tts", "auto") is AutoTts
    assert Piper.unavailable() is None and Espeak.unavailable() is None and AutoTts.unavailable() is None


def test_piper_speaks_english(piper):
    assert "en" in piper.voices()
    syn = piper.synthesize(FOX, "en")
    duration = len(syn.audio) / syn.sample_rate
    assert syn.sample_rate == 22050 and syn.audio.dtype == np.float32
    assert 1.8 < duration < 4.5  # 9 words at a natural pace
    assert rms(syn.audio) > 0.05


def test_piper_gives_phoneme_timings(piper):
    syn = piper.synthesize(FOX, "en")
    duration = len(syn.audio) / syn.sample_rate
    assert syn.phonemes is not None
    starts = [s for _, s, _ in syn.phonemes]
    assert starts == sorted(starts)
    assert syn.phonemes[-1][2] == pytest.approx(duration, abs=0.05)
    assert {"k", "b", "f", "d"} <= {p for p, _, _ in syn.phonemes}


def test_piper_speed_uses_length_scale(piper):
    normal = piper.synthesize(FOX, "en")
    fast = piper.synthesize(FOX, "en", speed=1.5)
    ratio = len(normal.audio) / len(fast.audio)
    assert 1.3 < ratio < 1.7
    if fast.phonemes is not None:
        assert fast.phonemes[-1][2] == pytest.approx(len(fast.audio) / fast.sample_rate, abs=0.05)


def test_piper_rejects_languages_it_has_no_voice_for(piper):
    with pytest.raises(UnsupportedLanguageError, match=r"no voice for 'es'.*languages: en"):
        piper.synthesize("Hola", "es")


def test_empty_text_is_silence_and_bad_speed_is_bad_input(piper, espeak):
    for backend, lang in ((piper, "en"), (espeak, "es")):
        assert len(backend.synthesize("   ", lang).audio) == 0
        with pytest.raises(BadInputError, match="speed"):
            backend.synthesize("Hello", lang, speed=0)


def test_espeak_voices_cover_many_languages(espeak):
    voices = espeak.voices()
    assert {"en", "es", "fr", "de", "it", "pt", "zh", "ru", "ar", "hi"} <= voices
    assert all(len(v) == 2 for v in voices)
    assert espeak.voice_for("es").tag == "es"  # Spain's voice, not es-419
    assert espeak.voice_for("zh").tag == "cmn"
    assert espeak.voice_for("pt-BR").tag == "pt-br"  # an exact regional voice wins


LISTING = """Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  cmn             --/M      Chinese_(Mandarin) sit/cmn              (zh-cmn 5)(zh 5)
 5  en-029          --/M      English_(Caribbean) gmw/en-029           (en 10)
 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  es              --/M      Spanish_(Spain)    roa/es
 5  es-419          --/M      Spanish_(Latin_America) roa/es-419           (es-mx 6)(es 6)
 5  py              --/M      Pyash              art/py
 5  en-us           --/F      us-mbrola-1        mb/mb-us1            (en 1)
"""


def test_parse_voices_ranks_by_priority_and_skips_non_iso_and_mbrola():
    table = parse_voices(LISTING)
    assert table.languages() == frozenset({"zh", "en", "es"})  # "py" is not ISO 639-1
    assert table.get("en").tag == "en-gb"  # priority 2 for "en" beats en-us's 3; mbrola skipped
    assert table.get("en-us").name == "English_(America)"
    assert table.get("es").tag == "es"
    with pytest.raises(UnsupportedLanguageError, match="languages: en, es, zh"):
        table.get("de")


def test_espeak_speaks_spanish_and_speed_changes_rate(espeak):
    normal = espeak.synthesize("Buenos días, ¿cómo estás? Me llamo Juan.", "es")
    fast = espeak.synthesize("Buenos días, ¿cómo estás? Me llamo Juan.", "es", speed=1.6)
    duration = len(normal.audio) / normal.sample_rate
    assert normal.sample_rate == 22050 and normal.phonemes is None
    assert 1.5 < duration < 5.0 and rms(normal.audio) > 0.02
    assert 1.35 < len(normal.audio) / len(fast.audio) < 1.85
    assert words_per_minute(1.0) == 175 and words_per_minute(10) == 450 and words_per_minute(0.1) == 80


def test_parse_wav_rejects_non_wav():
    with pytest.raises(BadInputError, match="not a WAV"):
        parse_wav(b"hello world")


def test_auto_uses_piper_for_english_and_espeak_for_the_rest(auto):
    assert auto.backend_for("en").name == "piper"
    assert auto.backend_for("es").name == "espeak"
    assert {"en", "es", "fr", "de"} <= auto.voices()
    assert auto.synthesize(FOX, "en").sample_rate == 22050
    with pytest.raises(UnsupportedLanguageError, match="no voice for 'xx'"):
        auto.synthesize("hello", "xx")


class BrokenPiper(Piper):
    """Piper on a machine without its voice package."""

    @classmethod
    def unavailable(cls) -> str | None:
        return "no Piper voice package installed"


class EspeakOnlyAuto(AutoTts):
    PARTS: ClassVar = (BrokenPiper, Espeak)


class NothingAuto(AutoTts):
    PARTS: ClassVar = (BrokenPiper,)


def test_auto_passes_piper_phoneme_timings_through(auto):
    assert auto.synthesize(FOX, "en").phonemes is not None


def test_auto_falls_back_to_espeak_when_piper_cannot_run(settings):
    auto = EspeakOnlyAuto(settings)
    auto.load()
    assert auto.backend_for("en").name == "espeak"
    assert len(auto.synthesize("Hello there", "en").audio) > 0
    assert NothingAuto.unavailable() == "piper: no Piper voice package installed"
    with pytest.raises(ModelLoadError, match="no TTS engine can run"):
        NothingAuto(settings).load()


def translation(text: str, lang: str, start_s: float, end_s: float) -> Translation:
    return Translation(
        session_id="s1", seq=7, start_s=start_s, end_s=end_s, text=text, source_lang="xx",
        target_lang=lang, speech_end_at=0.0,
    )


@pytest.fixture(scope="module")
def tts_stage(settings):
    stage = create_stage("tts", settings)  # the default backend: auto
    stage.load()
    yield stage
    stage.close()


@pytest.mark.parametrize(
    ("text", "lang", "span"),
    [
        (FOX, "en", (10.0, 12.3)),  # about natural length
        (FOX, "en", (3.0, 4.4)),  # far too short a slot: sped up, compressed, then cut
        ("Hola.", "es", (5.0, 7.5)),  # much shorter than its slot: padded
        ("Je voudrais un café, s'il vous plaît.", "fr", (0.0, 2.0)),
    ],
)
def test_tts_stage_fits_dub_exactly_to_segment(tts_stage, text, lang, span):
    [out] = tts_stage.process_sync(translation(text, lang, *span))
    duration = span[1] - span[0]
    assert (out.session_id, out.seq, out.start_s, out.end_s, out.target_lang) == ("s1", 7, *span, lang)
    assert len(out.pcm) == 2 * round(duration * out.sample_rate)
    assert out.mouth_rate == MOUTH_RATE
    assert len(out.mouth) == math.ceil(duration * MOUTH_RATE - 1e-9)
    mouth = np.array(out.mouth)
    assert mouth.min() >= 0 and mouth.max() <= 1 and mouth.max() > 0.5
    audio = out.samples()
    assert rms(audio[: round(0.5 * out.sample_rate)]) > 0.01, "speech starts at the segment start"
