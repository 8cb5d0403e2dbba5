"""`livedub bench --quality`: how much meaning survives a dub into each language, as round-trip chrF.

For each target language this machine can dub into from English (an MT route, a TTS voice, and
Whisper hears it), on the bench's parallel sentences (`speech_set.PARALLEL`, human translations):

* `mt_chrf`: the English sentences through the MT route, against the reference (text only);
* `tts_chrf`: the reference itself spoken by the configured TTS and transcribed back by Whisper,
  language given: what a listener (modelled by Whisper base) gets from the voice when the
  translation is perfect, so the ceiling of the next figure;
* `dub_chrf`: the MT output spoken and transcribed back the same way, against the reference: the
  text path of a dub end to end;
* `heard_as`: how many of the dubbed sentences Whisper's language detection puts in the target
  language;
* `routes`: `mt_chrf` of each other route with at most one pivot, to check the pivot order.

chrF is `scores.chrf` (sacrebleu) on `scores.normalise`d text (lower case, no punctuation): Whisper's
casing and punctuation are its own, not the voice's. Speech is at the engine's own rate (the TTS
stage's fitting to a segment's span is left out). English, when listed, is the baseline: the same
sentences in English through the TTS and back, with no MT.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workers.bench.scores import chrf, normalise
from workers.bench.speech_set import PARALLEL
from workers.errors import ConfigError, LiveDubError
from workers.settings import Settings, load_settings

log = logging.getLogger(__name__)
DEFAULT_LANGS = ("en", "es", "fr", "pt", "ca", "gl", "it")
SOURCE = "en"


def _chrf(refs: list[str], hyps: list[str]) -> float:
    return round(chrf([normalise(r) for r in refs], [normalise(h) for h in hyps]), 1)


def _speak(tts: Any, text: str, lang: str) -> np.ndarray:
    """16 kHz mono float32 speech of `text`."""
    import soxr

    s = tts.synthesize(text, lang)
    audio = s.audio if s.sample_rate == 16000 else soxr.resample(s.audio, s.sample_rate, 16000)
    return np.asarray(audio, np.float32)


def voice_label(tts: Any, lang: str) -> str:
    """The engine (and voice tag, where it is not the bare language) that speaks `lang`."""
    engine = tts.backend_for(lang) if hasattr(tts, "backend_for") else tts
    voice = engine.voice_for(lang) if hasattr(engine, "voice_for") else None
    tag = getattr(voice, "tag", lang).lower()
    return engine.name if tag == lang else f"{engine.name} ({tag})"


def detector(asr: Any) -> Callable[[np.ndarray], str]:
    """Spoken language of 16 kHz audio: faster-whisper's detection pass, else a transcription's language."""
    model = getattr(asr, "model", None)
    if model is not None and hasattr(model, "detect_language"):
        return lambda audio: model.detect_language(audio)[0]
    return lambda audio: asr.transcribe(audio, None).language


def other_routes(pairs: frozenset[tuple[str, str]], source: str, target: str,
                 chosen: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Every route of at most one pivot but the chosen one: direct, then by pivot."""
    routes = [[(source, target)]] if (source, target) in pairs else []
    routes += [[(source, p), (p, target)] for p in sorted({t for s, t in pairs if s == source})
               if p != target and (p, target) in pairs]
    return [r for r in routes if r != chosen]


def route_name(route: list[tuple[str, str]], source: str) -> str:
    return "-".join([source] + [b for _, b in route]) if route else f"{source} (no MT)"


def _translate(mt: Any, text: str, route: list[tuple[str, str]]) -> str:
    for a, b in route:
        text = mt.translate(text, a, b)
    return text


def quality_rows(mt: Any, tts: Any, asr: Any, langs: Sequence[str] = DEFAULT_LANGS,
                 parallel: Sequence[dict[str, str]] = PARALLEL, source: str = SOURCE,
                 detect: Callable[[np.ndarray], str] | None = None) -> list[dict[str, Any]]:
    """One row per language: the figures above, or `skipped` with the reason.

    `mt`, `tts` and `asr` are loaded backends (an MtBackend, a TtsBackend, a Whisper backend).
    """
    detect = detect or detector(asr)
    heard = asr.supported_languages()
    rows = []
    for lang in langs:
        started = time.perf_counter()
        sentences = [(row[source], row[lang]) for row in parallel if source in row and lang in row]
        try:
            if not sentences:
                raise LiveDubError(f"no reference translations into {lang!r} in speech_set.PARALLEL")
            if lang not in heard:
                raise LiveDubError(f"Whisper does not hear {lang!r}, so its speech cannot be transcribed back")
            route = mt.route(source, lang)
        except LiveDubError as e:
            rows.append({"lang": lang, "skipped": str(e)})
            continue
        try:
            voice = voice_label(tts, lang)
        except LiveDubError:  # its message lists every voice there is: too long for a table cell
            rows.append({"lang": lang, "skipped": f"no {tts.name} voice for {lang!r} here"})
            continue
        srcs, refs = [s for s, _ in sentences], [r for _, r in sentences]
        mt_out = [_translate(mt, s, route) for s in srcs]
        ref_heard = [asr.transcribe(_speak(tts, r, lang), lang).text for r in refs]
        if route:
            dub_audio = [_speak(tts, t, lang) for t in mt_out]
            dub_heard = [asr.transcribe(a, lang).text for a in dub_audio]
        else:  # the same language: the dub speaks the source text, already heard above
            dub_audio, dub_heard = [_speak(tts, r, lang) for r in refs], ref_heard
        alternatives = {
            route_name(r, source): _chrf(refs, [_translate(mt, s, r) for s in srcs])
            for r in (other_routes(mt.pairs(), source, lang, route) if route else [])
        }
        rows.append({
            "lang": lang, "route": route_name(route, source), "voice": voice, "sentences": len(refs),
            "mt_chrf": _chrf(refs, mt_out) if route else None,
            "tts_chrf": _chrf(refs, ref_heard),
            "dub_chrf": _chrf(refs, dub_heard),
            "heard_as": sum(detect(a) == lang for a in dub_audio),
            "routes": alternatives,
            "seconds": round(time.perf_counter() - started, 1),
            "examples": [{"reference": refs[0], "mt": mt_out[0], "heard": dub_heard[0]}],
        })
    return rows


def format_quality(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows."""
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = ["| lang | route (from en) | voice | mt chrF | tts chrF | dub chrF | heard as lang "
             "| other routes (mt chrF) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['lang']} | skipped: {r['skipped']} | | | | | | |")
            continue
        others = ", ".join(f"{k} {v:.1f}" for k, v in r["routes"].items()) or "-"
        lines.append(f"| {r['lang']} | {r['route']} | {r['voice']} | {f(r['mt_chrf'])} | {f(r['tts_chrf'])} | "
                     f"{f(r['dub_chrf'])} | {r['heard_as']}/{r['sentences']} | {others} |")
    return "\n".join(lines)


def run_quality(out: Path, langs: Sequence[str] = DEFAULT_LANGS, settings: Settings | None = None) -> dict[str, Any]:
    """The configured MT and TTS, judged by faster-whisper; writes out/quality.json and prints the table."""
    if importlib.util.find_spec("sacrebleu") is None:
        raise ConfigError("the quality benchmark scores with sacrebleu: pip install sacrebleu (in livedub[dev])")
    from workers.asr.faster_whisper import FasterWhisper
    from workers.bench.run import machine
    from workers.registry import backend_class

    settings = settings or load_settings()
    out.mkdir(parents=True, exist_ok=True)
    mt = backend_class("translate", settings.translate.backend)(settings)
    tts = backend_class("tts", settings.tts.backend)(settings)
    asr = FasterWhisper(settings)
    try:
        for b in (mt, tts, asr):
            b.load()
        rows = quality_rows(mt, tts, asr, langs)
    finally:
        for b in (mt, tts, asr):
            b.close()
    result = {"machine": machine(), "source": SOURCE, "translate": settings.translate.backend,
              "tts": settings.tts.backend, "asr": f"faster-whisper {settings.asr.model}",
              "pivots": list(settings.translate.pivots), "languages": rows}
    (out / "quality.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(format_quality(rows))
    return result
