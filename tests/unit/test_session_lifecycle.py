"""One session lifecycle: every driver opens and ends sessions on every stage.

The session id of `livedub dub` is the file's stem, so two files with the same name dubbed
through one pipeline are two sessions under one id: nothing of the first may reach the second.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from workers.asr.stage import AsrBackend, AsrResult, AsrStage
from workers.bench.calibrated import calibrated_pipeline
from workers.dub import dub_file
from workers.errors import ConfigError, UnsupportedLanguageError
from workers.media.sample import make_sample
from workers.records import SessionControl, SpeechSegment
from workers.registry import create_stage
from workers.settings import load_settings
from workers.stage import Capabilities
from workers.streaming import AsrStep, audio_end
from workers.topology import DEFAULT

FAST = {"segment": 0.0, "asr": 0.0, "translate": 0.0, "tts": 0.0, "lipsync": 0.0}


class DetectingAsr(AsrBackend):
    """Detects 'en' for the first file and 'es' for the second, surely; records what it was told."""

    name = "detecting"

    def __init__(self) -> None:
        super().__init__(load_settings())
        self.asked: list[str | None] = []
        self.detects = "en"

    def _load(self) -> None:
        pass

    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        self.asked.append(language)
        return AsrResult("hola", language or self.detects, 0.9, 1.0)


@pytest.mark.parametrize("mode", ["sequential", "pipelined"])
def test_two_files_with_the_same_stem_are_detected_afresh(tmp_path, mode):
    first, second = tmp_path / "a" / "talk.mp4", tmp_path / "b" / "talk.mp4"
    for p in (first, second):
        p.parent.mkdir()
        make_sample(p, seconds=1.0, size=64)
    asr = DetectingAsr()
    pipe = calibrated_pipeline(load_settings(), FAST, replace={"asr": AsrStage(asr)})
    r1 = asyncio.run(dub_file(first, ["es"], load_settings(), out=tmp_path / "a.es.mp4", pipeline=pipe, mode=mode))
    n1 = len(asr.asked)
    assert n1 == len(r1.report.segments) > 1 and asr.asked[0] is None and set(asr.asked[1:]) == {"en"}
    asr.detects = "es"
    asyncio.run(dub_file(second, ["es"], load_settings(), out=tmp_path / "b.es.mp4", pipeline=pipe, mode=mode))
    assert asr.asked[n1] is None, "the second session reused the first one's language"
    assert set(asr.asked[n1 + 1:]) == {"es"}
    assert pipe["asr"]._languages == {}  # nothing kept once the session ended


def test_a_stream_step_ends_the_session_on_the_stage_at_its_end_marker():
    asr = DetectingAsr()
    step = AsrStep(AsrStage(asr))
    seg = SpeechSegment("s", 0, 0.0, 1.0, 16000, bytes(3200), "pause", ("es",), None, 0.0)
    asyncio.run(step.handle(seg))
    asyncio.run(step.handle(seg.replace(seq=1)))
    assert asr.asked == [None, "en"]
    asyncio.run(step.handle(seg.replace(seq=-1, pcm=b"")))
    asr.detects = "es"
    asyncio.run(step.handle(seg))  # the id comes back: a new session
    assert asr.asked[-1] is None and step.open == {"s"}


def test_device_check_against_the_setting():
    settings = load_settings(device="cuda", translate={"backend": "apertium"})
    with pytest.raises(ConfigError, match="runs on cpu only, but LIVEDUB_DEVICE=cuda"):
        create_stage("translate", settings, strict_device=True)
    assert create_stage("translate", settings).name == "translate"  # in one process: a warning, runs on the CPU


def test_language_support_is_checked_before_a_session_starts():
    class EnglishOnly(DetectingAsr):
        capabilities = Capabilities(languages=frozenset({"en"}))

    pipe = calibrated_pipeline(load_settings(), FAST, replace={"asr": AsrStage(EnglishOnly())})
    with pytest.raises(UnsupportedLanguageError, match="does not recognise 'fr'"):
        pipe.check_session(SessionControl("s", "start", ("es",), "fr"))
    pipe.check_session(SessionControl("s", "start", ("es",), "en"))


def test_every_stage_has_the_lifecycle_of_the_base():
    for spec in DEFAULT.stages:
        cls = spec.stage_class()
        assert callable(cls.open_session) and callable(cls.end_session) and callable(cls.check_session)
    assert audio_end("s", 1.0).seq == -1


def test_exactly_one_onnx_runtime_is_installed():
    from workers.doctor import onnxruntime_distributions

    assert len(onnxruntime_distributions()) == 1, onnxruntime_distributions()
