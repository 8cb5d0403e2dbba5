"""AsrStage logic on a scripted backend: sticky session language, empty text dropped."""

from __future__ import annotations

import numpy as np

from workers.asr.stage import AsrBackend, AsrResult, AsrStage
from workers.records import SpeechSegment
from workers.settings import load_settings


class ScriptedAsr(AsrBackend):
    name = "scripted"

    def __init__(self, results: list[AsrResult]) -> None:
        super().__init__(load_settings())
        self.results = results
        self.asked: list[str | None] = []

    def _load(self) -> None:
        pass

    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        self.asked.append(language)
        return self.results.pop(0)


def seg(sid: str, seq: int, lang: str | None = None) -> SpeechSegment:
    return SpeechSegment(sid, seq, seq, seq + 1, 16000, bytes(3200), "pause", ("es",), lang, 0.0)


def test_a_confident_detection_is_reused_for_the_rest_of_the_session():
    b = ScriptedAsr([AsrResult("uh", "en", 0.5, 0.6), AsrResult("hello", "en", 0.9, 0.95),
                     AsrResult("again", "en", 0.9), AsrResult("other", "fr", 0.9, 0.9)])
    st = AsrStage(b)
    st.process_sync(seg("a", 0))
    st.process_sync(seg("a", 1))
    st.process_sync(seg("a", 2))
    st.process_sync(seg("b", 0))  # another session detects on its own
    assert b.asked == [None, None, "en", None]
    st.end_session("a")
    b.results.append(AsrResult("x", "de", 0.9, 0.9))
    st.process_sync(seg("a", 3))
    assert b.asked[-1] is None


def test_a_given_language_wins_and_empty_text_is_dropped():
    b = ScriptedAsr([AsrResult("  ", "de", 0.9), AsrResult("Hallo", "de", 0.9)])
    st = AsrStage(b)
    assert st.process_sync(seg("a", 0, "de")) == []
    (t,) = st.process_sync(seg("a", 1, "de"))
    assert (t.text, t.language, t.seq) == ("Hallo", "de", 1)
    assert b.asked == ["de", "de"]
