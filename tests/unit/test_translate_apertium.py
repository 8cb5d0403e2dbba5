"""Apertium through its CLI: discovered pairs, real translations, and clear errors."""

from __future__ import annotations

import pytest

from workers.errors import StageError, UnsupportedLanguageError
from workers.records import Transcript
from workers.registry import backend_class, create_stage
from workers.translate import apertium as apertium_module
from workers.translate.apertium import Apertium
from workers.translate.languages import choose_modes, parse_apertium_mode, to_iso1


@pytest.fixture(scope="module")
def mt(loaded):
    return loaded(Apertium)


def test_iso_codes():
    assert to_iso1("eng") == "en" and to_iso1("spa") == "es" and to_iso1("fra") == "fr"
    assert to_iso1("en_US") == "en" and to_iso1("pt-BR") == "pt" and to_iso1("cmn-latn-pinyin") == "zh"
    assert to_iso1("py") is None and to_iso1("jbo") is None and to_iso1("") is None


def test_mode_names():
    assert parse_apertium_mode("spa-eng_US").variant == "US"
    assert parse_apertium_mode("eco-es-fr") is None
    assert parse_apertium_mode("xx-yy") is None
    modes = choose_modes(["spa-eng_US", "spa-eng", "eco-fr-es", "fr-es", "eng-spa"])
    assert modes == {("es", "en"): "spa-eng", ("fr", "es"): "fr-es", ("en", "es"): "eng-spa"}
    assert choose_modes(["spa-eng_US"]) == {("es", "en"): "spa-eng_US"}  # a variant when it is all there is


def test_pairs_are_discovered_from_installed_modes(mt):
    assert backend_class("translate", "apertium") is Apertium
    assert Apertium.unavailable() is None
    assert {("en", "es"), ("es", "en"), ("fr", "es"), ("es", "fr")} <= mt.pairs()
    assert mt.mode("es", "en") == "spa-eng"  # not the spa-eng_US variant


@pytest.mark.parametrize(
    ("text", "src", "tgt", "expected"),
    [
        ("Good morning.", "en", "es", ["Buenos"]),
        ("The black cat sleeps in the house.", "en", "es", ["gato", "casa"]),
        ("Buenos días, amigo.", "es", "en", ["Good morning"]),
        ("El perro come en la casa.", "es", "en", ["dog", "house"]),
        ("Le chat noir dort dans la maison.", "fr", "es", ["gato", "casa"]),
        ("El gato duerme.", "es", "fr", ["chat"]),
    ],
)
def test_known_sentences(mt, text, src, tgt, expected):
    out = mt.translate(text, src, tgt)
    for word in expected:
        assert word in out, f"{text!r} -> {out!r}"
    assert "*" not in out and "\n" not in out and out == out.strip()


def test_unknown_words_pass_through_without_marks(mt):
    assert "Zorblax" in mt.translate("Zorblax is here.", "en", "es")


def test_unsupported_pair_lists_available_pairs(mt):
    with pytest.raises(UnsupportedLanguageError, match=r"en->de; available pairs: .*en->es.*es->en"):
        mt.translate("Hello", "en", "de")


def test_empty_text(mt):
    assert mt.translate("  ", "en", "es") == ""


class MissingMode(Apertium):
    """Apertium whose pair table points at a mode that was uninstalled after load."""

    def mode(self, source: str, target: str) -> str:
        super().mode(source, target)
        return "xx-yy"


def test_failing_subprocess_is_a_stage_error_with_stderr(settings):
    with pytest.raises(StageError, match=r"exited 1: .*xx-yy does not exist") as info:
        MissingMode(settings).translate("Hello", "en", "es")
    assert not info.value.retryable


def test_timeout_is_retryable(mt, monkeypatch):
    monkeypatch.setattr(apertium_module, "TIMEOUT_S", 0.001)
    with pytest.raises(StageError, match="timed out") as info:
        mt.translate("Good morning. " * 50, "en", "es")
    assert info.value.retryable


def test_stage_fans_out_and_passes_through_same_language(settings):
    stage = create_stage("translate", settings)
    stage.load()
    tr = Transcript(
        session_id="s", seq=3, start_s=1.0, end_s=2.5, text="Good morning, my friend.", language="en",
        confidence=0.9, target_langs=("es", "en"), speech_end_at=0.0,
    )
    try:
        es, en = stage.process_sync(tr)
        with pytest.raises(UnsupportedLanguageError):
            stage.process_sync(tr.replace(target_langs=("de",)))
    finally:
        stage.close()
    assert (es.target_lang, es.source_lang, es.seq, es.start_s, es.end_s) == ("es", "en", 3, 1.0, 2.5)
    assert "Buenos" in es.text
    assert en.text == tr.text


def test_a_missing_pair_is_bridged_through_a_pivot_language(mt) -> None:
    assert mt.route("en", "fr") == [("en", "es"), ("es", "fr")]
    out = mt.translate_via("Good morning, my friend.", "en", "fr")
    assert "bonjour" in out.lower() or "matin" in out.lower() or "ami" in out.lower(), out
