"""Apertium through its CLI: discovered pairs, real translations, and clear errors."""

from __future__ import annotations

import pytest

from workers.errors import StageError, UnsupportedLanguageError
from workers.records import Transcript
from workers.registry import backend_class, create_stage
from workers.translate import apertium as apertium_module
from workers.translate.apertium import PAIR_PACKAGES, Apertium
from workers.translate.languages import choose_modes, parse_apertium_mode, to_iso1
from workers.translate.stage import find_route


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


# `apertium -l` on Debian 12 with PAIR_PACKAGES installed, in its own order, plus modes other pairs add that
# are no translation (Esperanto's debug pipelines, apertium-hbs-eng's transliterator).
DEBIAN_MODES = [
    "Cyrl-Latn", "ca-eo-translit", "cat-eng", "cat-eng_US", "cat-fra", "cat-ita", "cat-por", "cat-por_BR",
    "cat-por_PTpre1990", "cat-spa", "eco-es-fr", "eco-fr-es", "en-eo-bytecode-cg", "en-gl", "eng-cat",
    "eng-cat_iec2017", "eng-cat_valencia", "eng-cat_valencia_uni_iec2017", "eng-spa", "es-eo-no_cg", "es-fr",
    "es-gl", "es-pt", "es-pt_BR", "fr-es", "fra-cat", "fra-cat_pre2017", "gl-en", "gl-es", "gl-pt-latin1", "gl-pt",
    "ita-cat", "ita-cat_pre2017", "ita-spa", "por-cat", "por-cat_pre2017", "pt-es", "pt-gl-latin1", "pt-gl",
    "spa-cat", "spa-cat_valencia", "spa-cat_valencia_uni", "spa-eng", "spa-eng_US", "spa-ita",
]


def test_modes_of_the_debian_pairs():
    modes = choose_modes(DEBIAN_MODES)
    assert modes == {
        ("ca", "en"): "cat-eng", ("ca", "fr"): "cat-fra", ("ca", "it"): "cat-ita", ("ca", "pt"): "cat-por",
        ("ca", "es"): "cat-spa", ("en", "gl"): "en-gl", ("en", "ca"): "eng-cat", ("en", "es"): "eng-spa",
        ("es", "fr"): "es-fr", ("es", "gl"): "es-gl", ("es", "pt"): "es-pt", ("fr", "es"): "fr-es",
        ("fr", "ca"): "fra-cat", ("gl", "en"): "gl-en", ("gl", "es"): "gl-es", ("gl", "pt"): "gl-pt",
        ("it", "ca"): "ita-cat", ("it", "es"): "ita-spa", ("pt", "ca"): "por-cat", ("pt", "es"): "pt-es",
        ("pt", "gl"): "pt-gl", ("es", "ca"): "spa-cat", ("es", "en"): "spa-eng", ("es", "it"): "spa-ita",
    }
    assert choose_modes(DEBIAN_MODES[::-1]) == modes  # the listing's order does not matter


def test_mode_choice_between_variants_and_namings():
    # Only variants: the shortest, whatever the order.
    assert choose_modes(["cat-por_PTpre1990", "cat-por_BR"]) == {("ca", "pt"): "cat-por_BR"}
    assert choose_modes(["spa-cat_valencia_uni", "spa-cat_valencia"]) == {("es", "ca"): "spa-cat_valencia"}
    # Apertium's current ISO 639-3 name over an older two-letter one for the same pair.
    assert choose_modes(["es-ca", "spa-cat"]) == choose_modes(["spa-cat", "es-ca"]) == {("es", "ca"): "spa-cat"}
    assert choose_modes(["por-spa", "pt-es"]) == {("pt", "es"): "por-spa"}
    for name in ("gl-pt-latin1", "en-eo-bytecode-cg", "es-eo-no_cg", "Cyrl-Latn", "ca-eo-translit"):
        assert parse_apertium_mode(name) is None, name


def test_find_route_prefers_the_configured_pivots():
    pairs = {("en", "es"), ("en", "ca"), ("es", "fr"), ("ca", "fr"), ("es", "pt"), ("ca", "pt"), ("pt", "gl")}
    assert find_route(pairs, "en", "es") == [("en", "es")]
    assert find_route(pairs, "en", "en") == []
    assert find_route(pairs, "en", "fr") == [("en", "ca"), ("ca", "fr")]  # no preference: alphabetical
    assert find_route(pairs, "en", "fr", ("es",)) == [("en", "es"), ("es", "fr")]
    assert find_route(pairs, "en", "fr", ("de", "ca", "es")) == [("en", "ca"), ("ca", "fr")]  # de bridges nothing
    assert find_route(pairs, "en", "gl", ("es",)) is None  # en->es->pt->gl: two pivots are not chained


def test_new_targets_are_routed_through_spanish_or_directly(mt):
    assert mt.route("en", "pt") == [("en", "es"), ("es", "pt")]
    assert mt.route("en", "it") == [("en", "es"), ("es", "it")]
    assert mt.route("en", "ca") == [("en", "ca")]
    assert mt.route("en", "gl") == [("en", "gl")]
    assert mt.route("fr", "pt") == [("fr", "es"), ("es", "pt")]
    assert mt.route("pt", "ca") == [("pt", "ca")]


def test_the_pivot_order_is_a_setting(settings):
    s = settings.model_copy(update={"translate": settings.translate.model_copy(update={"pivots": ("ca",)})})
    mt = Apertium(s)
    try:
        assert mt.route("en", "fr") == [("en", "ca"), ("ca", "fr")]
        assert mt.route("en", "pt") == [("en", "ca"), ("ca", "pt")]
    finally:
        mt.close()


def test_every_pair_package_is_installed(mt):
    """install.sh and the images install PAIR_PACKAGES; each one's modes are discovered here."""
    assert len(PAIR_PACKAGES) == len(set(PAIR_PACKAGES))
    assert {("en", "ca"), ("ca", "en"), ("en", "gl"), ("gl", "en"), ("es", "pt"), ("pt", "es"), ("es", "ca"),
            ("ca", "es"), ("es", "gl"), ("gl", "es"), ("es", "it"), ("it", "es"), ("fr", "ca"), ("ca", "fr"),
            ("pt", "ca"), ("ca", "pt"), ("pt", "gl"), ("gl", "pt"), ("ca", "it"), ("it", "ca")} <= mt.pairs()


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
        ("The black cat sleeps in the house.", "en", "ca", ["gat", "casa"]),
        ("The black cat sleeps in the house.", "en", "gl", ["gato", "casa"]),
        ("El gato negro duerme en la casa.", "es", "pt", ["gato", "casa"]),
        ("El gato negro duerme en la casa.", "es", "it", ["gatto", "casa"]),
        ("El gato negro duerme en la casa.", "es", "ca", ["gat", "casa"]),
        ("O gato dorme na casa.", "pt", "es", ["gato", "casa"]),
        ("Le chat noir dort dans la maison.", "fr", "ca", ["gat", "casa"]),
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
    with pytest.raises(StageError, match="timed out") as info:  # the command line (the pipeline's fallback)
        mt._spawned(mt.mode("en", "es"), "Good morning. " * 50)
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
    assert "gato" in mt.translate_via("The black cat sleeps in the house.", "en", "pt")
    assert "gatto" in mt.translate_via("The black cat sleeps in the house.", "en", "it")


TRICKY = ["Can everyone hear me clearly now?", "It's 5$ [sic] / <b> {x} @home ^_^", "  two   spaces\nand a line  "]


def test_the_running_pipeline_translates_as_the_command_line_does(mt):
    """Every installed pair, reserved characters of Apertium's stream format included."""
    for (_src, _tgt), mode in sorted(mt._modes.items()):
        for text in TRICKY:
            assert mt._piped(mode, text) == mt._spawned(mode, text), (mode, text)


def test_a_pipeline_whose_tool_died_is_replaced_and_the_segment_still_translated(mt, caplog):
    mt.translate("Good morning.", "en", "es")
    pipe = mt._pipes["eng-spa"]
    pipe.procs[len(pipe.procs) // 2].kill()  # a tool in the middle crashes
    assert mt.translate("Good morning.", "en", "es") == "Buenos días."
    assert "through the command line" in caplog.text
    assert "eng-spa" not in mt._pipes  # the broken one is gone; the next segment starts a new one
    assert mt.translate("Good morning.", "en", "es") == "Buenos días." and mt._pipes["eng-spa"] is not pipe


def test_a_stalled_pipeline_is_given_up_within_its_timeout(tmp_path):
    import time

    from workers.translate.apertium_pipe import ModePipeline, PipeError

    tool = tmp_path / "stall"
    tool.write_text("#!/bin/sh\nexec sleep 60\n")
    tool.chmod(0o755)
    mode = tmp_path / "x-y.mode"
    passing = tmp_path / "pass"
    passing.write_text("#!/bin/sh\nexec cat\n")
    passing.chmod(0o755)
    mode.write_text(f"'{passing}' | '{tool}' '/some/file.bin' | '{passing}'")
    pipe = ModePipeline(mode)
    t0 = time.monotonic()
    with pytest.raises(PipeError, match="no answer"):
        pipe.translate("hello", 0.5)
    assert time.monotonic() - t0 < 2
    pipe.close()


def test_at_most_the_configured_number_of_pipelines_run(settings):
    def mt_keeping(n: int) -> Apertium:
        mt = Apertium(settings.model_copy(update={"translate": settings.translate.model_copy(
            update={"apertium_pipelines": n})}))
        mt.load()
        return mt

    mt = mt_keeping(2)
    try:
        for target in ("es", "ca", "gl"):
            assert mt.translate("Good morning.", "en", target)
        assert list(mt._pipes) == [mt.mode("en", "ca"), mt.mode("en", "gl")]  # the least recently used went
        assert all(p.poll() is None for pipe in mt._pipes.values() for p in pipe.procs)
    finally:
        mt.close()
    none = mt_keeping(0)
    assert none.translate("Good morning.", "en", "es") == "Buenos días." and not none._pipes
