"""Does the dub sound like the speaker? `livedub bench --voice`.

For each source speaker (English) and target language: the plain TTS voice and the matched one
(workers/voice/match.py: closest voice by pitch and formants, then converted), each scored by
* similarity: GE2E cosine between the dub and held-out speech of the speaker (the embedding the
  issue names; the matcher never sees it: it chooses and converts by Praat statistics);
* intelligibility: faster-whisper's WER of the dub against its own text (each sentence's capped at
  100 %: Whisper sometimes loops on synthetic speech, and one loop would outweigh the rest);
* acoustics: semitones off the speaker's median pitch and vocal-tract length (Praat).

The speakers are what this machine has: Piper's joe (a natural male voice) and espeak-ng
voices (synthetic, female and male). An espeak speaker dubbed by espeak variants is an easy case;
joe is the telling one. Then the speaker-turn check on a made dialogue (workers/bench/speaker_turns.py).
Writes OUT/voice.json and prints a table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from workers.bench.scores import normalise, wer
from workers.bench.speech_set import PARALLEL
from workers.records import VoiceProfile
from workers.settings import Settings, load_settings
from workers.speaker.base import cosine
from workers.tts.stage import Synth
from workers.voice.match import VoiceMatcher
from workers.voice.spectrum import spectrum
from workers.voice.stats import VoiceStats, measure

RATE = 16000
SPEAKERS = {  # name -> (engine, variant) speaking English
    "joe (piper, male)": ("piper", ""),
    "espeak f4 (female)": ("espeak", "f4"),
    "espeak m3 (male)": ("espeak", "m3"),
}
LANGS = ("es", "it", "fr")
PROFILE = PARALLEL[:3]  # what the segment stage would have heard of the speaker
HELD_OUT = PARALLEL[3:]  # the speaker's reference for grading
DUBBED = PARALLEL  # what is dubbed (the chooser measures voices on other text: match.REFERENCE)


def _16k(s: Synth) -> np.ndarray:
    import soxr

    return np.asarray(s.audio if s.sample_rate == RATE else soxr.resample(s.audio, s.sample_rate, RATE), np.float32)


def _semitones(a: VoiceStats, b: VoiceStats) -> tuple[float, float]:
    pitch = 12 * math.log2(a.f0_median / b.f0_median)
    tract = 12 * math.log2(math.sqrt(a.formant_1 * a.formant_2 / (b.formant_1 * b.formant_2)))
    return abs(pitch), abs(tract)


def voice_rows(tts: Any, speakers: dict[str, Any], encoder: Any, asr: Any, matcher: VoiceMatcher,
               langs: tuple[str, ...] = LANGS) -> list[dict[str, Any]]:
    rows = []
    for name, (engine, variant) in SPEAKERS.items():
        src = speakers[engine]
        own = _16k(src.synthesize(" ".join(p["en"] for p in PROFILE), "en", 1.0, variant))
        stats = measure(own, RATE)
        profile = VoiceProfile(tuple(float(x) for x in encoder.embed(own, RATE)), stats.f0_median, stats.f0_low,
                               stats.f0_high, stats.formant_1, stats.formant_2, spectrum(own, RATE))
        ref = encoder.embed(_16k(src.synthesize(" ".join(p["en"] for p in HELD_OUT), "en", 1.0, variant)), RATE)
        for lang in langs:
            choice = matcher.voice("bench", name, lang, profile)
            row: dict[str, Any] = {"speaker": name, "lang": lang, "voice": choice.variant if choice else "",
                                   "speaker_f0": round(stats.f0_median, 1)}
            for kind in ("plain", "matched"):
                sims, texts, heard, pitch, tract = [], [], [], [], []
                for p in DUBBED:
                    if kind == "plain":
                        syn = tts.synthesize(p[lang], lang)
                    else:
                        syn = matcher.convert(tts.synthesize(p[lang], lang, 1.0, choice.variant), choice, profile)
                    audio = _16k(syn)
                    sims.append(cosine(encoder.embed(audio, RATE), ref))
                    texts.append(normalise(p[lang]))
                    heard.append(normalise(asr.transcribe(audio, lang).text))
                    st = measure(audio, RATE)
                    if st.usable:
                        dp, dt = _semitones(st, stats)
                        pitch.append(dp)
                        tract.append(dt)
                # per sentence, capped at 100 %: one hallucinated repetition would otherwise outweigh the rest
                errors = [min(1.0, wer([t], [h])) * len(t.split()) for t, h in zip(texts, heard, strict=True)]
                row[kind] = {"similarity": round(float(np.mean(sims)), 3),
                             "wer": round(100 * sum(errors) / sum(len(t.split()) for t in texts), 1),
                             "pitch_off_st": round(float(np.mean(pitch)), 1) if pitch else None,
                             "tract_off_st": round(float(np.mean(tract)), 1) if tract else None}
            row["gain"] = round(row["matched"]["similarity"] - row["plain"]["similarity"], 3)
            rows.append(row)
            print(f"[voice] {json.dumps(row)}")
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = ["| speaker | lang | voice | similarity plain → matched | WER plain → matched | "
             "pitch off (st) | tract off (st) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        p, m = r["plain"], r["matched"]
        lines.append(f"| {r['speaker']} | {r['lang']} | {r['voice'] or 'default'} | {p['similarity']:.2f} → "
                     f"{m['similarity']:.2f} ({r['gain']:+.2f}) | {p['wer']:.1f} → {m['wer']:.1f} | "
                     f"{p['pitch_off_st']} → {m['pitch_off_st']} | {p['tract_off_st']} → {m['tract_off_st']} |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {"similarity_gain": round(float(np.mean([r["gain"] for r in rows])), 3),
            "wer_change": round(float(np.mean([r["matched"]["wer"] - r["plain"]["wer"] for r in rows])), 1),
            "min_gain": round(float(min(r["gain"] for r in rows)), 3)}


def run(out: Path, settings: Settings | None = None) -> dict[str, Any]:
    from workers.asr.faster_whisper import FasterWhisper
    from workers.bench.run import machine
    from workers.registry import backend_class, create_backend

    settings = settings or load_settings()
    out.mkdir(parents=True, exist_ok=True)
    tts = backend_class("tts", settings.tts.backend)(settings)
    speakers = {name: backend_class("tts", name)(settings) for name in ("piper", "espeak")}
    encoder = create_backend("speaker", settings)
    converter = None if settings.voice.backend == "none" else create_backend("voice", settings)
    asr = FasterWhisper(settings)
    parts = [tts, *speakers.values(), encoder, asr] + ([converter] if converter else [])
    try:
        for b in parts:
            b.load()
        rows = voice_rows(tts, speakers, encoder, asr, VoiceMatcher(tts, converter))
    finally:
        for b in parts:
            b.close()
    from workers.bench.speaker_turns import run_turns

    result = {"machine": machine(), "tts": settings.tts.backend, "converter": settings.voice.backend,
              "grader": f"{settings.speaker.backend} cosine; faster-whisper {settings.asr.model} WER",
              "summary": summary(rows), "rows": rows, "turns": run_turns(settings)}
    (out / "voice.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(format_rows(rows))
    print(json.dumps(result["summary"]))
    return result
