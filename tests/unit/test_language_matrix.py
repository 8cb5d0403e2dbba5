"""The language matrix: which heard sources reach each target, how, and which voice speaks it."""

from __future__ import annotations

from workers.doctor import print_languages
from workers.language_matrix import format_matrix, language_matrix, machine_matrix

PAIRS = {("en", "es"), ("es", "en"), ("es", "fr"), ("fr", "es"), ("es", "pt"), ("pt", "gl"), ("en", "ca"),
         ("ca", "fr"), ("eo", "en")}
VOICES = {"en": "piper", "es": "espeak", "fr": "espeak (fr-fr)", "pt": "espeak", "ca": "espeak"}
HEARS = {"en", "es", "fr", "pt", "ca", "gl", "de"}  # Whisper does not hear eo


def test_rows_list_direct_and_pivoted_sources_with_the_voice():
    m = language_matrix(HEARS, PAIRS, VOICES, pivots=("es",))
    fr = m.row("fr")
    assert fr.voice == "espeak (fr-fr)"
    assert fr.direct == ("ca", "es")
    assert fr.via == (("es", ("en",)),)  # en->es->fr (es first in the pivots), not en->ca->fr
    assert m.row("en").direct == ("es",) and m.row("en").via == (("es", ("fr",)),)  # eo is not heard
    assert m.row("pt").sources == ("en", "es", "fr")
    gl = m.row("gl")
    assert gl.voice is None and gl.direct == ("pt",) and gl.via == (("pt", ("es",)),)
    assert "gl" not in m.dub_targets and {"es", "fr", "pt", "ca", "en"} <= set(m.dub_targets)
    assert m.sources == ("ca", "en", "es", "fr")  # pt reaches only gl, which has no voice; de reaches nothing
    # Routes only two pivots would make, to voiced targets (en->es->pt->gl is not listed: gl has no voice).
    assert set(m.two_pivots) == {("ca", "fr", "es", "en"), ("ca", "fr", "es", "pt"), ("fr", "es", "en", "ca")}


def test_pivot_order_and_two_pivot_routes():
    voices = {**VOICES, "gl": "mms"}
    m = language_matrix(HEARS, PAIRS, voices, pivots=())
    assert m.row("fr").via == (("ca", ("en",)),)  # no preference: the alphabetically first bridge
    assert ("en", "es", "pt", "gl") in m.two_pivots and ("fr", "es", "pt", "gl") in m.two_pivots
    assert all(len(p) == 4 for p in m.two_pivots)


def test_markdown_table():
    text = format_matrix(language_matrix(HEARS, PAIRS, VOICES, pivots=("es",)))
    lines = text.splitlines()
    assert "| target | voice | direct from | through a pivot |" in lines
    assert "| fr | espeak (fr-fr) | ca, es | en (via es) |" in lines
    assert "| gl | none: not a dub target | pt | es (via pt) |" in lines
    assert "Sources (heard, and translated into a voiced target): ca, en, es, fr" in lines


def test_this_machine(settings):
    """The installed pairs and voices: Portuguese and Italian through Spanish, Catalan directly."""
    m = machine_matrix(settings)
    assert {"en", "es", "fr", "pt", "ca", "gl", "it", "de", "ja"} <= m.hears
    pt, ca, it, en = m.row("pt"), m.row("ca"), m.row("it"), m.row("en")
    assert pt.voice == "espeak" and ("es", ("en", "fr", "it")) in pt.via
    assert ca.voice == "espeak" and {"en", "es", "fr", "pt", "it"} <= set(ca.direct)
    assert it.voice == "espeak" and "en" in dict(it.via)["es"]
    assert en.voice == "piper" and {"es", "ca", "gl"} <= set(en.direct)
    assert {"es", "fr", "pt", "ca", "it", "en"} <= set(m.dub_targets)


def test_doctor_prints_the_matrix(settings, capsys):
    print_languages(settings)
    out = capsys.readouterr().out
    assert out.startswith("languages:\n")
    assert "  | pt | espeak | ca, es, gl | en, fr, it (via es) |" in out.splitlines()
