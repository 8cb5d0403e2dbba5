"""`livedub bench --asr-window`: Whisper's encoder window (`LIVEDUB_ASR__WINDOW_S`) against cost and accuracy.

Whisper's encoder always runs on a 30 s window, so a 2 s segment pays for 30 s. A shorter window
costs less; the model was trained on 30 s windows, so accuracy must be shown to hold. Per language:
seven meeting sentences (the sample's three and four more), translated from English by the
pipeline's own MT, spoken by the sample's voices (Piper for English, espeak-ng otherwise), one
segment each; Whisper base transcribes them with the language given, and again detecting it.
Figures: chrF of the transcripts against the spoken text, ms per segment, segments whose detected
language was right; per window. (The judge here is the text that was spoken, not a model.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

SENTENCES = [
    "We will meet again on Thursday to review the budget.",
    "Please send me the slides before the call tomorrow morning.",
    "The new office opens next month near the station.",
    "Can everyone hear me clearly now?",
]
LANGS = ("en", "es", "fr", "it", "pt")
WINDOWS = (30.0, 10.0, 6.0)


def run(out: Path) -> dict[str, Any]:
    import soxr

    from workers.bench.quality import _chrf
    from workers.media.sample import DEFAULT_TEXT, sentences, speak
    from workers.registry import create_backend
    from workers.settings import load_settings

    out.mkdir(parents=True, exist_ok=True)
    base = load_settings()
    mt = create_backend("translate", base)
    mt.load()
    source = sentences(DEFAULT_TEXT["en"]) + SENTENCES
    asr = {w: create_backend("asr", load_settings(asr={"window_s": w})) for w in WINDOWS}
    for b in asr.values():
        b.load()
    rows: list[dict[str, Any]] = []
    for lang in LANGS:
        texts = source if lang == "en" else [mt.translate_via(t, "en", lang) for t in source]
        parts, rate = speak(" ".join(texts), lang)
        audio = [soxr.resample(a, rate, 16000).astype(np.float32) for a in parts]
        for window, b in asr.items():
            b.transcribe(audio[0], lang)  # warm
            t = time.perf_counter()
            heard = [b.transcribe(a, lang).text for a in audio]
            ms = (time.perf_counter() - t) / len(audio) * 1000
            detected = sum(b.transcribe(a, None).language == lang for a in audio)
            rows.append({"lang": lang, "window_s": window, "chrf": _chrf(texts, heard), "ms_per_segment": round(ms),
                         "detected": f"{detected}/{len(audio)}",
                         "segment_s": [round(len(a) / 16000, 2) for a in audio], "heard": heard})
            print(f"{lang} window {window:4.0f} s: chrF {rows[-1]['chrf']:5.1f}, {ms:4.0f} ms/segment, "
                  f"language detected {detected}/{len(audio)}", flush=True)
    result = {"model": base.asr.model, "threads": base.asr.cpu_threads or "one per core", "rows": rows,
              "note": "one process alone on this machine; the sentences are 1-3.5 s long"}
    (out / "asr_window.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result
