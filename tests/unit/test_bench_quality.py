"""`livedub bench --quality`: the round-trip chrF figures, computed on stand-in backends whose losses are known."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from streams.cli import build_parser
from workers.bench import quality
from workers.bench.quality import format_quality, other_routes, quality_rows
from workers.bench.speech_set import PARALLEL
from workers.errors import UnsupportedLanguageError
from workers.translate.stage import find_route

PAR = (
    {"en": "the cat sleeps in the house", "es": "el gato duerme en la casa", "pt": "o gato dorme na casa",
     "ca": "el gat dorm a la casa"},
    {"en": "good morning my friend", "es": "buenos días amigo mío", "pt": "bom dia meu amigo",
     "ca": "bon dia amic meu"},
)
LEXICON = {("en", "es"): {r["en"]: r["es"] for r in PAR}, ("es", "pt"): {r["es"]: r["pt"] for r in PAR},
           ("en", "ca"): {r["en"]: r["ca"] for r in PAR}, ("ca", "pt"): {}}


class Mt:
    """Perfect en->es and es->pt, perfect en->ca, and a ca->pt that leaves the text as it is."""

    def pairs(self):
        return frozenset(LEXICON)

    def route(self, source, target):
        found = find_route(self.pairs(), source, target, ("es",))
        if found is None:
            raise UnsupportedLanguageError(f"no {source}->{target}")
        return found

    def translate(self, text, source, target):
        return LEXICON[(source, target)].get(text, text)


class Tts:
    """'Speaks' text as a run of samples that the stand-in ASR reads back; no Catalan voice."""

    name = "auto"

    def __init__(self):
        self.said: list[str] = []

    def backend_for(self, lang):
        if lang == "ca":
            raise UnsupportedLanguageError("tts/auto has no voice for 'ca'; languages: " + ", ".join("x" * 50))
        return SimpleNamespace(name="espeak", voice_for=lambda lang: SimpleNamespace(tag=lang))

    def synthesize(self, text, lang, speed=1.0, variant=""):
        self.backend_for(lang)
        self.said.append(text)
        return SimpleNamespace(audio=np.full(8000, len(self.said), np.float32), sample_rate=16000)


class Asr:
    """Hears the text back and drops its last word, so the TTS round trip is not perfect."""

    def __init__(self, tts):
        self.tts = tts

    def supported_languages(self):
        return frozenset({"en", "es", "pt", "ca"})

    def transcribe(self, audio, language):
        text = self.tts.said[int(audio[0]) - 1]
        return SimpleNamespace(text=" ".join(text.split()[:-1]), language=language)


@pytest.fixture
def rows():
    tts = Tts()
    return quality_rows(Mt(), tts, Asr(tts), ["en", "es", "pt", "ca", "gl"], parallel=PAR,
                        detect=lambda audio: "pt" if int(audio[0]) % 2 else "es")


def test_rows_for_each_language(rows):
    en, es, pt, ca, gl = rows
    assert (es["route"], es["voice"], es["sentences"]) == ("en-es", "espeak", 2)
    assert es["mt_chrf"] == 100.0  # the stand-in MT is perfect
    assert 40 < es["tts_chrf"] < 100 and es["dub_chrf"] == es["tts_chrf"]  # only ASR's dropped word is lost
    assert pt["route"] == "en-es-pt" and pt["mt_chrf"] == 100.0
    assert pt["routes"] == {"en-ca-pt": pytest.approx(quality._chrf([r["pt"] for r in PAR],
                                                                    [r["ca"] for r in PAR]), abs=0.05)}
    assert pt["routes"]["en-ca-pt"] < 50  # the route through ca leaves Catalan: worse, as the figure says
    assert en["route"] == "en (no MT)" and en["mt_chrf"] is None and en["routes"] == {}
    assert ca == {"lang": "ca", "skipped": "no auto voice for 'ca' here"}
    assert gl["lang"] == "gl" and "no reference translations" in gl["skipped"]
    assert es["heard_as"] + pt["heard_as"] >= 1 and es["examples"][0]["mt"] == PAR[0]["es"]


def test_a_language_whisper_cannot_hear_or_route_is_skipped():
    tts = Tts()
    par = ({"en": "hello", "eo": "saluton", "de": "hallo"},)
    eo, de = quality_rows(Mt(), tts, Asr(tts), ["eo", "de"], parallel=par, detect=lambda a: "en")
    assert "Whisper does not hear 'eo'" in eo["skipped"]
    assert "Whisper does not hear 'de'" in de["skipped"]


def test_other_routes():
    pairs = frozenset({("en", "es"), ("es", "pt"), ("en", "ca"), ("ca", "pt"), ("en", "pt")})
    assert other_routes(pairs, "en", "pt", [("en", "pt")]) == [[("en", "ca"), ("ca", "pt")],
                                                                 [("en", "es"), ("es", "pt")]]


def test_table(rows):
    lines = format_quality(rows).splitlines()
    assert lines[0].startswith("| lang | route (from en) | voice | mt chrF | tts chrF | dub chrF |")
    assert any(line.startswith("| pt | en-es-pt | espeak | 100.0 |") for line in lines)
    assert "| ca | skipped: no auto voice for 'ca' here | | | | | | |" in lines


def test_reference_translations_cover_the_new_languages():
    for row in PARALLEL:
        assert {"en", "es", "fr", "pt", "ca", "gl", "it"} <= set(row)
        assert all(row[k].strip() and row[k] != row["en"] for k in row if k != "en")


def test_cli_flag_runs_the_quality_bench(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(quality, "run_quality", lambda out: calls.append(out) or {})
    args = build_parser().parse_args(["bench", "--quality", "--out", str(tmp_path)])
    assert args.quality and args.fn(args) == 0
    assert calls == [tmp_path]
    assert not build_parser().parse_args(["bench"]).quality


@pytest.mark.slow
def test_run_quality_writes_json(tmp_path, monkeypatch, settings, capsys):
    """run_quality with the real backends' construction, but only a language nothing here serves (fast)."""
    monkeypatch.setattr(quality, "quality_rows", lambda mt, tts, asr, langs: [{"lang": "xx", "skipped": "test"}])
    result = quality.run_quality(tmp_path, ("xx",), settings)
    saved = json.loads((tmp_path / "quality.json").read_text())
    assert saved["languages"] == result["languages"] == [{"lang": "xx", "skipped": "test"}]
    assert saved["translate"] == "apertium" and saved["pivots"] == ["es", "en"]
    assert "| xx | skipped: test |" in capsys.readouterr().out
